package identity

import (
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// oidSubjectAltName is the subjectAltName extension (RFC 5280, 4.2.1.6).
var oidSubjectAltName = asn1.ObjectIdentifier{2, 5, 29, 17}

// uriTag is a GeneralName's uniformResourceIdentifier: [6] IMPLICIT IA5String.
var uriTag = cbasn1.Tag(6).ContextSpecific()

// URISANs returns the certificate's URI SANs exactly as the certificate encodes them. They are
// read from the raw subjectAltName extension, not from cert.URIs: crypto/x509 runs each URI
// through url.Parse, which lower-cases the scheme, decodes %-escapes and drops an empty query
// or fragment, so cert.URIs can show a canonical identity the certificate does not carry.
func URISANs(cert *x509.Certificate) ([]string, error) {
	if cert == nil {
		return nil, errors.New("no certificate")
	}
	var uris []string
	seen := false
	for _, ext := range cert.Extensions {
		if !ext.Id.Equal(oidSubjectAltName) {
			continue
		}
		if seen {
			return nil, errors.New("the certificate has two subjectAltName extensions")
		}
		seen = true
		names := cryptobyte.String(ext.Value)
		var seq cryptobyte.String
		if !names.ReadASN1(&seq, cbasn1.SEQUENCE) || !names.Empty() {
			return nil, errors.New("the certificate's subjectAltName extension is malformed")
		}
		for !seq.Empty() {
			var name cryptobyte.String
			var tag cbasn1.Tag
			if !seq.ReadAnyASN1(&name, &tag) {
				return nil, errors.New("the certificate's subjectAltName extension is malformed")
			}
			switch tag {
			case uriTag:
				uris = append(uris, string(name))
			case uriTag.Constructed():
				return nil, fmt.Errorf("the certificate's URI SAN %d is not an IA5String", len(uris)+1)
			}
		}
	}
	return uris, nil
}
