package api

import (
	"encoding/json"
	"sort"
	"strings"
	"testing"

	"github.com/remotegate/remotegate/policy"
)

// httpMethods are the keys of an OpenAPI path item that are operations.
var httpMethods = map[string]bool{
	"get": true, "put": true, "post": true, "delete": true,
	"options": true, "head": true, "patch": true, "trace": true,
}

// wantRight is the x-remotegate-right value openapi.json must give a route.
func wantRight(r route) string {
	switch r.access {
	case public:
		return "public"
	case anyAccount:
		return "none"
	case bootstrap:
		return "bootstrap"
	case rightNeeded:
		return r.right.String()
	}
	return "unknown access"
}

// TestOpenAPIDocumentsEveryRoute checks that openapi.json documents exactly
// the routes of routes(), with the rights they need, unique operation IDs
// and resolvable schema references.
func TestOpenAPIDocumentsEveryRoute(t *testing.T) {
	var doc map[string]any
	if err := json.Unmarshal(openAPIDoc, &doc); err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	if v, _ := doc["openapi"].(string); !strings.HasPrefix(v, "3.") {
		t.Errorf("openapi = %q, want 3.x", v)
	}

	// The documented operations, keyed by "METHOD path".
	ops := map[string]map[string]any{}
	paths, ok := doc["paths"].(map[string]any)
	if !ok {
		t.Fatalf("openapi.json: paths is %T, want an object", doc["paths"])
	}
	for path, item := range paths {
		item, ok := item.(map[string]any)
		if !ok {
			t.Errorf("path %s: %T, want an object", path, item)
			continue
		}
		for method, o := range item {
			if !httpMethods[method] {
				continue // parameters, summary, ...
			}
			o, ok := o.(map[string]any)
			if !ok {
				t.Errorf("%s %s: %T, want an object", method, path, o)
				continue
			}
			ops[strings.ToUpper(method)+" "+path] = o
		}
	}

	// Every route is documented with its right and handler name.
	seen := map[string]bool{}
	for _, r := range routes() {
		key := r.method + " " + r.path
		if seen[key] {
			t.Errorf("route %s listed twice in routes()", key)
		}
		seen[key] = true
		o, ok := ops[key]
		if !ok {
			t.Errorf("route %s is not documented in openapi.json", key)
			continue
		}
		if got, want := o["x-remotegate-right"], wantRight(r); got != want {
			t.Errorf("%s: x-remotegate-right = %v, want %q", key, got, want)
		}
		if o["operationId"] != r.op {
			t.Errorf("%s: operationId = %v, want %q", key, o["operationId"], r.op)
		}
		if r.access == public {
			if sec, ok := o["security"].([]any); !ok || len(sec) != 0 {
				t.Errorf("%s: public route, want \"security\": [], got %v", key, o["security"])
			}
		}
	}
	var extra []string
	for key := range ops {
		if !seen[key] {
			extra = append(extra, key)
		}
	}
	sort.Strings(extra)
	for _, key := range extra {
		t.Errorf("openapi.json documents %s, which is not in routes()", key)
	}

	// Operation IDs are present and unique.
	ids := map[string]string{}
	for key, o := range ops {
		id, _ := o["operationId"].(string)
		if id == "" {
			t.Errorf("%s: no operationId", key)
			continue
		}
		if other, dup := ids[id]; dup {
			t.Errorf("operationId %q used by both %s and %s", id, other, key)
		}
		ids[id] = key
	}

	// Every operation documents the 413 that wrap answers to a body over
	// the limit.
	for key, o := range ops {
		if responses, _ := o["responses"].(map[string]any); responses["413"] == nil {
			t.Errorf("%s: no 413 response (a body over the limit)", key)
		}
	}

	// Every $ref names an existing schema or response.
	components, _ := doc["components"].(map[string]any)
	var walk func(where string, v any)
	walk = func(where string, v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				if k == "$ref" {
					ref, _ := x.(string)
					exists := false
					for _, kind := range []string{"schemas", "responses"} {
						if name, ok := strings.CutPrefix(ref, "#/components/"+kind+"/"); ok {
							entries, _ := components[kind].(map[string]any)
							_, exists = entries[name]
						}
					}
					if !exists {
						t.Errorf("%s: $ref %v does not resolve to a components/schemas or components/responses entry", where, x)
					}
					continue
				}
				walk(where+"/"+k, x)
			}
		case []any:
			for _, x := range v {
				walk(where, x)
			}
		}
	}
	walk("#", doc)

	// The rights named in the document are the access model's rights.
	for key, o := range ops {
		name, _ := o["x-remotegate-right"].(string)
		switch name {
		case "public", "none", "bootstrap":
		default:
			if _, err := policy.ParseRight(name); err != nil {
				t.Errorf("%s: x-remotegate-right: %v", key, err)
			}
		}
	}
}
