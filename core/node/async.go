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
	n.Organizer = organizer.New(n.log.Named("organizer"), 4)
	n.addReplayJobs()
	if n.Retention.MaxAge > 0 || n.Retention.MaxRows > 0 {
		n.Organizer.Add(organizer.Job{Name: quarantine.RetentionJob, Interval: quarantine.RetentionEvery, Run: n.Retention.Run})
	}
	if err := n.startRules(ctx); err != nil {
		return nil, err
	}
	if err := n.startIntegrity(ctx); err != nil {
		return nil, err
	}
	if err := n.startAPI(ctx); err != nil {
		return nil, err
	}
	n.Organizer.Start(ctx)
	return n.Organizer.Wait, nil
}
