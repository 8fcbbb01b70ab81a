// The node's pause (sandbox) image binary: sleeps until SIGTERM/SIGINT, reaps children.
module pagerbridge.local/node/pause

go 1.22
