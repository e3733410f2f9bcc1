// Package layering holds the test that enforces the SDK's import rules: which
// top-level packages may import which (see DESIGN.md, "Layering rule").
package layering
