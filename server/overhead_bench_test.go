package server_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	concordv1 "concord/gen/concord/v1"
	"concord/internal/mtls"
	"concord/server/servertest"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
)

// bareMatch is a grpc-go MatchService that answers every request with one prepared response:
// the floor of what serving Match over mTLS costs, without authorization, validation, rate
// limiting, the index or the state.
type bareMatch struct {
	concordv1.UnimplementedMatchServiceServer
	resp *concordv1.MatchResponse
}

func (b *bareMatch) Match(context.Context, *concordv1.MatchRequest) (*concordv1.MatchResponse, error) {
	return b.resp, nil
}

// BenchmarkMatchOverhead compares, in one run, Match calls answered by a Concord node (the whole
// stack: mTLS, identity and role, rate limiter, protovalidate, the index, the state and
// sharing restrictions) with the same calls answered by a bare grpc-go server returning the
// same response message over the same mTLS (DESIGN.md §6: ≥ 0.8× the bare server). Each call
// carries 10 hashes; one of them matches a notice.
func BenchmarkMatchOverhead(b *testing.B) {
	n := servertest.Start(b, servertest.Options{})
	ctx := context.Background()
	content := "overhead bench"
	if _, err := n.Client(b, "fr-pharos").SubmitNotice(ctx, glorificationNotice(content)); err != nil {
		b.Fatal(err)
	}
	req := &concordv1.MatchRequest{}
	for i := range 10 {
		if i == 0 {
			req.Hashes = append(req.Hashes, sha256Hash(content))
			continue
		}
		sum := sha256.Sum256(fmt.Append(nil, i))
		req.Hashes = append(req.Hashes, &concordv1.Hash{Kind: concordv1.HashKind_HASH_KIND_SHA256, Value: sum[:]})
	}
	platform := n.Client(b, "videoshare")
	resp, err := platform.Matches.Match(ctx, req)
	if err != nil {
		b.Fatal(err)
	}

	// The bare server, with the node's own certificate and CA.
	tlsConf, err := mtls.ServerConfig(n.Config.TLS)
	if err != nil {
		b.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	bare := grpc.NewServer(grpc.Creds(credentials.NewTLS(tlsConf)))
	concordv1.RegisterMatchServiceServer(bare, &bareMatch{resp: resp})
	go func() { _ = bare.Serve(ln) }()
	b.Cleanup(bare.Stop)
	clientConf, err := mtls.ClientConfig(n.PartnerTLS("videoshare"))
	if err != nil {
		b.Fatal(err)
	}
	conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(credentials.NewTLS(clientConf)))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { conn.Close() })
	bareClient := concordv1.NewMatchServiceClient(conn)
	// The same plain grpc-go client for both, so that only the servers differ.
	nodeConn, err := grpc.NewClient(n.GRPCAddr(), grpc.WithTransportCredentials(credentials.NewTLS(clientConf)))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { nodeConn.Close() })
	nodeClient := concordv1.NewMatchServiceClient(nodeConn)

	rates := map[string]float64{}
	for _, tc := range []struct {
		name string
		call func() error
	}{
		{"bare_grpc", func() error { _, err := bareClient.Match(ctx, req); return err }},
		{"concord", func() error { _, err := nodeClient.Match(ctx, req); return err }},
	} {
		b.Run(tc.name, func(b *testing.B) {
			const workers = 8
			var wg sync.WaitGroup
			per := b.N/workers + 1
			start := time.Now()
			for range workers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for range per {
						if err := tc.call(); err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			rate := float64(per*workers) / time.Since(start).Seconds()
			rates[tc.name] = rate
			b.ReportMetric(rate, "calls/s")
		})
	}
	if rates["bare_grpc"] > 0 && rates["concord"] > 0 {
		b.ReportMetric(rates["concord"]/rates["bare_grpc"], "concord/bare")
		b.Logf("Concord serves %.2f× the calls/s of a bare grpc-go server", rates["concord"]/rates["bare_grpc"])
	}
}
