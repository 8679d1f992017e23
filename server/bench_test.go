package server_test

import (
	"context"
	"fmt"
	"testing"

	concordv1 "concord/gen/concord/v1"
	"concord/gen/concord/v1/concordv1connect"
	"concord/internal/pki"
	"concord/server/servertest"

	"connectrpc.com/connect/v2/connecthttp"
)

// BenchmarkWhoAmI compares the two ports on the smallest authenticated call: mTLS, identity,
// role check, validation, a registry read. Run with `make bench`.
func BenchmarkWhoAmI(b *testing.B) {
	n := servertest.Start(b, servertest.Options{})
	ctx := context.Background()
	req := &concordv1.WhoAmIRequest{}
	b.Run("port=grpc/client=grpc-go", func(b *testing.B) {
		c := n.Client(b, "videoshare")
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := c.Registry.WhoAmI(ctx, req); err != nil {
					b.Fatal(err)
				}
			}
		})
	})
	for name, opts := range map[string][]connecthttp.Option{
		"port=https/protocol=connect": nil,
		"port=https/protocol=grpc":    {connecthttp.WithGRPC()},
	} {
		b.Run(name, func(b *testing.B) {
			c := concordv1connect.NewRegistryServiceClient(connectClient(b, n, "videoshare", opts...))
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := c.WhoAmI(ctx, req); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}

// BenchmarkUpdateRegistry measures an acknowledged registry change: verify the admin's
// signature, check, commit through raft (fsync) and apply. Sequential: one writer's latency.
func BenchmarkUpdateRegistry(b *testing.B) {
	n := servertest.Start(b, servertest.Options{})
	admin := n.Client(b, "hub-ops")
	key, err := pki.LoadSigningKey(n.PKI.SigningKey("hub-ops"))
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		env := signedBy(b, key, &concordv1.RegistryChange{Author: "hub-ops",
			Change: &concordv1.RegistryChange_UpsertPartner{UpsertPartner: &concordv1.Partner{
				Id: "videoshare", DisplayName: fmt.Sprintf("VideoShare %d", i), Roles: []concordv1.Role{concordv1.Role_ROLE_OPERATOR}}}})
		if _, err := admin.Registry.UpdateRegistry(ctx, &concordv1.UpdateRegistryRequest{Envelope: env}); err != nil {
			b.Fatal(err)
		}
	}
}
