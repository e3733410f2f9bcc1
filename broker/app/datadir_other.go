//go:build !unix

package app

import "io/fs"

// fileOwner is unknown where files have no Unix owner; the permissions are
// still tightened.
func fileOwner(fs.FileInfo) (int, bool) { return 0, false }
