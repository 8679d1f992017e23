package metrics

import (
	"crypto/x509"
	"strconv"

	"concord/internal/version"

	"github.com/prometheus/client_golang/prometheus"
)

// BuildInfo is concord_build_info: 1, labelled with the release and commit the node runs, the
// API package and the newest raft command it applies, so that a rolling upgrade can be
// followed member by member.
func BuildInfo(newestCommand int) prometheus.Collector {
	in := version.Get()
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: Namespace, Name: "build_info",
		Help: "Always 1; its labels say which Concord the node runs.",
		ConstLabels: prometheus.Labels{"release": in.Release, "commit": in.Commit, "go_version": in.Go,
			"api": in.API, "newest_command": strconv.Itoa(newestCommand)},
	}, func() float64 { return 1 })
}

// CertificateExpiry is concord_tls_certificate_expiry_timestamp_seconds{certificate=name}: when
// the certificate current() returns (the one in use now, reloaded ones included) stops being
// valid.
func CertificateExpiry(name string, current func() *x509.Certificate) prometheus.Collector {
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: Namespace, Name: "tls_certificate_expiry_timestamp_seconds",
		Help:        "When a certificate the node presents stops being valid (Unix time), by certificate: server (both ports), node (the raft port).",
		ConstLabels: prometheus.Labels{"certificate": name},
	}, func() float64 {
		c := current()
		if c == nil {
			return 0
		}
		return float64(c.NotAfter.Unix())
	})
}
