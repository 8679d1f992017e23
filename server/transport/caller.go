package transport

import (
	"context"

	"concord/server/authz"
)

func callerID(ctx context.Context) string {
	if c, ok := authz.CallerFrom(ctx); ok {
		return c.PartnerID
	}
	return ""
}

func nodeID(ctx context.Context) string {
	if n, ok := authz.NodeFrom(ctx); ok {
		return n.ID
	}
	return ""
}
