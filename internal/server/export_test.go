package server

// ZeroCopySets counts the record sets sent from their files, for the
// external tests of this directory.
func ZeroCopySets() int64 { return zeroCopySets.Load() }
