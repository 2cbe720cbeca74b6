package node

import (
	"context"

	"github.com/fleetcore/fleetcore/core/organizer"
	"github.com/fleetcore/fleetcore/core/quarantine"
)

// startAsync starts the organizer with every asynchronous job and the
// other background services. The returned func waits for them to stop
// after ctx ends.
func (n *Node) startAsync(ctx context.Context) (func(), error) {
	n.org = organizer.New(n.log.Named("organizer"), 4)
	n.addReplayJobs()
	if n.retention.MaxAge > 0 || n.retention.MaxRows > 0 {
		n.org.Add(organizer.Job{Name: quarantine.RetentionJob, Interval: quarantine.RetentionEvery, Run: n.retention.Run})
	}
	if err := n.startRules(ctx); err != nil {
		return nil, err
	}
	n.startDecoders(ctx)
	if err := n.startIntegrity(ctx); err != nil {
		return nil, err
	}
	if err := n.startAPI(ctx); err != nil {
		return nil, err
	}
	n.org.Start(ctx)
	return n.org.Wait, nil
}
