package verify

import (
	"context"
	"errors"
)

func runQueue(ctx context.Context, e *env) (*Result, error) {
	return nil, errors.New("queue workload: not yet")
}
