package httpapi

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"unicode/utf8"

	"github.com/aws/aws-lambda-go/events"
	jsonv2 "github.com/go-json-experiment/json"
)

// TestEventJSONIsEncodingJSON holds the events' reading to encoding/json,
// which aws-lambda-go's typed handlers use: every shipped event, and the
// odd ones API Gateway is not known to send but a test event or a proxy
// might (case variants, duplicate names, invalid UTF-8, unknown members),
// decode to the same request in both payload formats.
func TestEventJSONIsEncodingJSON(t *testing.T) {
	files, err := filepath.Glob("../../events/*.json")
	if err != nil || len(files) < 20 {
		t.Fatalf("%d events (%v)", len(files), err)
	}
	cases := map[string][]byte{
		"case variants":   []byte(`{"HTTPMETHOD":"POST","Path":"/a","requestcontext":{"IDENTITY":{"SourceIP":"192.0.2.1"}},"BODY":"{}"}`),
		"duplicate names": []byte(`{"httpMethod":"GET","httpMethod":"POST","headers":{"a":"1","a":"2"},"body":"x","body":"y"}`),
		"invalid UTF-8":   []byte("{\"httpMethod\":\"POST\",\"body\":\"\xff\xfe ok\",\"headers\":{\"x\xc3\":\"\xe2\x82\"}}"),
		"unknown members": []byte(`{"version":"2.0","routeKey":"POST /a","extra":{"deep":[1,2,{"x":null}]},"requestContext":{"http":{"method":"POST","sourceIp":"2001:db8::1"},"more":true},"body":"{}"}`),
		"nulls":           []byte(`{"httpMethod":null,"headers":null,"multiValueHeaders":{"a":null},"body":null,"isBase64Encoded":null}`),
		"base64 body":     []byte(`{"version":"2.0","isBase64Encoded":true,"body":"eyJhIjoxfQ==","cookies":["a=b"],"queryStringParameters":{"q":"1"}}`),
	}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		cases[filepath.Base(f)] = raw
		// Every event, payload v2 too, reads as a REST event first.
		if err := jsonv2.Unmarshal(raw, &restEvent{}, eventJSON); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
	for name, raw := range cases {
		t.Run(name, func(t *testing.T) {
			sameDecode(t, raw, &restEvent{}, &restEvent{})
			sameDecode(t, raw, &events.APIGatewayProxyRequest{}, &events.APIGatewayProxyRequest{})
			sameDecode(t, raw, &events.APIGatewayV2HTTPRequest{}, &events.APIGatewayV2HTTPRequest{})
		})
	}
	// Not JSON, or not an object: both refuse it.
	for _, raw := range []string{``, `{`, `[]`, `"event"`, `{"httpMethod":1}`, `{"a":1}x`} {
		var e events.APIGatewayProxyRequest
		if errV1, errV2 := json.Unmarshal([]byte(raw), &e), jsonv2.Unmarshal([]byte(raw), &e, eventJSON); (errV1 == nil) != (errV2 == nil) {
			t.Errorf("%q: encoding/json says %v, eventJSON says %v", raw, errV1, errV2)
		}
	}
}

func sameDecode[T any](t *testing.T, raw []byte, v1, v2 *T) {
	t.Helper()
	errV1 := json.Unmarshal(raw, v1)
	errV2 := jsonv2.Unmarshal(raw, v2, eventJSON)
	if (errV1 == nil) != (errV2 == nil) {
		t.Fatalf("%T: encoding/json says %v, eventJSON says %v", v1, errV1, errV2)
	}
	if !reflect.DeepEqual(v1, v2) {
		t.Errorf("%T:\nencoding/json %+v\neventJSON     %+v", v1, *v1, *v2)
	}
}

// TestAnswerJSONIsEncodingJSON: the answers' bytes are those aws-lambda-go's
// typed handler wrote (encoding/json without HTML escaping, less its final
// newline), for bodies with markup and non-ASCII text; for a body with
// invalid UTF-8, the same JSON value.
func TestAnswerJSONIsEncodingJSON(t *testing.T) {
	bodies := []string{``, `{"verification_id":"abc","expires_in":600}`, `<html lang="zh-CN">验证码 & "quotes"</html>`, "bad \xff utf-8 \u2028"}
	headers := map[string]string{"content-type": "application/json", "retry-after": "60", "access-control-allow-origin": "https://a.example", "b": "<&>"}
	for _, body := range bodies {
		for _, answer := range []any{
			events.APIGatewayProxyResponse{StatusCode: 200, Headers: headers, Body: body},
			events.APIGatewayV2HTTPResponse{StatusCode: 429, Headers: headers, Body: body},
			events.APIGatewayProxyResponse{StatusCode: 204},
		} {
			var want bytes.Buffer
			enc := json.NewEncoder(&want)
			enc.SetEscapeHTML(false)
			if err := enc.Encode(answer); err != nil {
				t.Fatal(err)
			}
			got, err := jsonv2.Marshal(answer, eventJSON)
			if err != nil {
				t.Fatal(err)
			}
			same := bytes.Equal(got, bytes.TrimSuffix(want.Bytes(), []byte("\n")))
			if !utf8.ValidString(body) {
				// encoding/json writes the replacement character as
				// \ufffd, json v2 as itself: the same string.
				same = reflect.DeepEqual(decodeAnswer(t, got), decodeAnswer(t, want.Bytes()))
			}
			if !same {
				t.Errorf("%T:\ngot  %s\nwant %s", answer, got, want.Bytes())
			}
		}
	}
}

func decodeAnswer(t *testing.T, b []byte) any {
	t.Helper()
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	return v
}
