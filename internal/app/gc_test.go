package app

import "testing"

func TestGCSettings(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		limit   int64
		percent int
		ok      bool
	}{
		{"local server", nil, 0, 0, false},
		{"256 MB", map[string]string{"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256"}, 214748364, 400, true},
		{"128 MB", map[string]string{"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128"}, 107374182, 400, true},
		{"1024 MB", map[string]string{"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "1024"}, 858993459, 400, true},
		{"not a number", map[string]string{"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "lots"}, 0, 0, false},
		{"below Lambda's minimum", map[string]string{"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "64"}, 0, 0, false},
		{"GOGC set", map[string]string{"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256", "GOGC": "100"}, 0, 0, false},
		{"GOMEMLIMIT set", map[string]string{"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256", "GOMEMLIMIT": "100MiB"}, 0, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			limit, percent, ok := GCSettings(func(k string) string { return tt.env[k] })
			if limit != tt.limit || percent != tt.percent || ok != tt.ok {
				t.Errorf("got %d, %d, %v; want %d, %d, %v", limit, percent, ok, tt.limit, tt.percent, tt.ok)
			}
		})
	}
}
