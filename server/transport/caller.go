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
