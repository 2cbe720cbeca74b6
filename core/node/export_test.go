package node

import "context"

// SetDecoderScanGate makes the node run gate before the first scan of its
// decoder folder (a compile as slow as gate). Call it before Run.
func SetDecoderScanGate(n *Node, gate func(context.Context)) { n.decScanGate = gate }
