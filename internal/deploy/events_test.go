package deploy

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-lambda-go/events"

	"github.com/verifykit/verifykit/internal/apptest"
)

const eventsDir = "../../events"

// templateRoutes is the set of "METHOD /path" the template routes to the
// function (ANY included).
func templateRoutes(t *testing.T) map[string]bool {
	t.Helper()
	d := parseWorld(t, rawTemplate(t), worlds[0])
	fn, err := d.tmpl.GetServerlessFunctionWithName("VerificationFunction")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, ev := range fn.Events {
		if ev.Properties != nil && ev.Properties.ApiEvent != nil {
			out[strings.ToUpper(ev.Properties.ApiEvent.Method)+" "+ev.Properties.ApiEvent.Path] = true
		}
	}
	return out
}

func routed(routes map[string]bool, method, path string) bool {
	return routes[method+" "+path] || routes["ANY "+path]
}

// checkBody decodes a body the way the adapters must: base64 first when the
// event says so; a present body must be one JSON object.
func checkBody(t *testing.T, body string, b64 bool) {
	t.Helper()
	if b64 {
		raw, err := base64.StdEncoding.DecodeString(body)
		if err != nil {
			t.Fatalf("isBase64Encoded but body is not base64: %v", err)
		}
		body = string(raw)
	}
	if body == "" {
		return
	}
	dec := json.NewDecoder(bytes.NewReader([]byte(body)))
	var obj map[string]any
	if err := dec.Decode(&obj); err != nil || dec.More() {
		t.Errorf("body %q is not one JSON object (%v)", body, err)
	}
}

// The documentation ranges the samples' source IPs come from, IPv4 and IPv6.
var (
	restIPs = []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24"), netip.MustParsePrefix("2001:db8:1::/48")}
	httpIPs = []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24"), netip.MustParsePrefix("2001:db8:2::/48")}
)

func inRanges(ranges []netip.Prefix, ip string) bool {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return false
	}
	for _, p := range ranges {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// ipKey is the per-IP budget a source IP counts under by default: the
// address, or the /64 of an IPv6 address. Two samples in one key would
// share a budget.
func ipKey(ip string) string {
	a, err := netip.ParseAddr(ip)
	if err != nil || a.Unmap().Is4() {
		return ip
	}
	p, _ := a.Prefix(64)
	return p.String()
}

func TestEvents(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(eventsDir, "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no events (%v)", err)
	}
	// apptest.Expectations checks the table itself: each file listed once,
	// each status the one httpapi answers.
	want := map[string]apptest.Expectation{}
	for _, e := range apptest.Expectations(t, eventsDir) {
		want[e.File] = e
	}
	routes := templateRoutes(t)
	ips := map[string]string{}
	covered := map[string]bool{} // "rest METHOD /path" and "http METHOD /path"
	var base64Bodies, ipv6Events int

	for _, file := range files {
		name := filepath.Base(file)
		t.Run(name, func(t *testing.T) {
			exp := want[name]
			data := readFile(t, file)
			var ip string
			switch {
			case strings.HasPrefix(name, "rest-"):
				var ev events.APIGatewayProxyRequest
				if err := json.Unmarshal(data, &ev); err != nil {
					t.Fatal(err)
				}
				rc := ev.RequestContext
				ip = rc.Identity.SourceIP
				if ev.HTTPMethod == "" || ev.Resource == "" || ev.Path == "" || rc.RequestID == "" || rc.Stage == "" {
					t.Errorf("incomplete v1 event: method %q resource %q path %q requestId %q stage %q", ev.HTTPMethod, ev.Resource, ev.Path, rc.RequestID, rc.Stage)
				}
				if rc.HTTPMethod != ev.HTTPMethod || rc.ResourcePath != ev.Resource {
					t.Errorf("requestContext says %s %s, event says %s %s", rc.HTTPMethod, rc.ResourcePath, ev.HTTPMethod, ev.Resource)
				}
				if !strings.HasPrefix(rc.Path, "/"+rc.Stage+"/") {
					t.Errorf("requestContext.path %q does not start with the stage %q", rc.Path, rc.Stage)
				}
				if !routed(routes, ev.HTTPMethod, ev.Resource) {
					t.Errorf("%s %s: no such route in template.yaml", ev.HTTPMethod, ev.Resource)
				}
				if ev.Resource == "/{proxy+}" {
					if p := ev.PathParameters["proxy"]; "/"+p != ev.Path {
						t.Errorf("pathParameters.proxy %q does not match path %q", p, ev.Path)
					}
				} else if !strings.HasSuffix(ev.Path, ev.Resource) {
					t.Errorf("path %q does not end with resource %q", ev.Path, ev.Resource)
				}
				if exp.Error != "method_not_allowed" {
					covered["rest "+ev.HTTPMethod+" "+ev.Resource] = true
				}
				checkBody(t, ev.Body, ev.IsBase64Encoded)
				if ev.IsBase64Encoded {
					base64Bodies++
				}
				if !inRanges(restIPs, ip) {
					t.Errorf("sourceIp %s outside %s", ip, restIPs)
				}
			case strings.HasPrefix(name, "http-"):
				var ev events.APIGatewayV2HTTPRequest
				if err := json.Unmarshal(data, &ev); err != nil {
					t.Fatal(err)
				}
				rc := ev.RequestContext
				ip = rc.HTTP.SourceIP
				if ev.Version != "2.0" || rc.RequestID == "" || rc.Stage == "" || rc.HTTP.Method == "" {
					t.Errorf("incomplete v2 event: version %q requestId %q stage %q method %q", ev.Version, rc.RequestID, rc.Stage, rc.HTTP.Method)
				}
				method, path, _ := strings.Cut(ev.RouteKey, " ")
				if ev.RouteKey != rc.RouteKey || method != rc.HTTP.Method {
					t.Errorf("routeKey %q, requestContext.routeKey %q, method %q disagree", ev.RouteKey, rc.RouteKey, rc.HTTP.Method)
				}
				wantRaw := path
				if rc.Stage != "$default" {
					wantRaw = "/" + rc.Stage + path
				}
				if ev.RawPath != wantRaw || rc.HTTP.Path != wantRaw {
					t.Errorf("rawPath %q, http.path %q, want %q for stage %q", ev.RawPath, rc.HTTP.Path, wantRaw, rc.Stage)
				}
				if !routed(routes, method, path) {
					t.Errorf("%s: not a route of the API in template.yaml", ev.RouteKey)
				}
				covered["http "+ev.RouteKey] = true
				checkBody(t, ev.Body, ev.IsBase64Encoded)
				if ev.IsBase64Encoded {
					base64Bodies++
				}
				if !inRanges(httpIPs, ip) {
					t.Errorf("sourceIp %s outside %s", ip, httpIPs)
				}
			default:
				t.Fatal("name must start with rest- or http-")
			}
			if other, dup := ips[ipKey(ip)]; dup {
				t.Errorf("sourceIp %s shares its IP key %s with %s", ip, ipKey(ip), other)
			}
			ips[ipKey(ip)] = name
			if strings.Contains(ip, ":") {
				ipv6Events++
			}
		})
	}
	for name := range want {
		if !slices.Contains(files, filepath.Join(eventsDir, name)) {
			t.Errorf("README lists %s, which does not exist", name)
		}
	}
	if ipv6Events == 0 {
		t.Error("no event from an IPv6 client")
	}
	if base64Bodies == 0 {
		t.Error("no event with a base64-encoded body")
	}
	for route := range routes {
		if strings.HasPrefix(route, "ANY ") {
			continue
		}
		for _, kind := range []string{"rest", "http"} {
			if !covered[kind+" "+route] {
				t.Errorf("no %s event for %s", kind, route)
			}
		}
	}
	if !covered["rest GET /{proxy+}"] {
		t.Error("no REST event for an unknown route")
	}
}
