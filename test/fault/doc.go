// Package fault holds end-to-end fault tests of the oncelog broker (cut
// connections, lost responses, kill -9 of the real process, torn and
// corrupt files, bad input). The fault-injecting TCP proxy they use is
// internal/faultproxy.
package fault
