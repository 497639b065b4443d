// Command sampleimg writes one captcha, drawn exactly as the service draws
// them, to a PNG file for the documentation, and prints its answer:
//
//	go run ./internal/captcha/sampleimg -o docs/captcha-sample.png
//
// The drawing library's randomness cannot be seeded, so every run draws a
// different captcha of the same style.
package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/verifykit/verifykit/internal/captcha"
)

// discard is a Store that keeps nothing: the sample is never solved.
type discard struct{}

func (discard) PutChallenge(context.Context, captcha.Challenge) error { return nil }
func (discard) SolveChallenge(context.Context, captcha.Solve) error   { return captcha.ErrExpired }

func main() {
	out := flag.String("o", "docs/captcha-sample.png", "PNG file to write")
	flag.Parse()
	if flag.NArg() != 0 {
		flag.Usage()
		os.Exit(2)
	}
	if err := run(*out); err != nil {
		fmt.Fprintln(os.Stderr, "sampleimg:", err)
		os.Exit(1)
	}
}

func run(path string) error {
	master := make([]byte, 32)
	if _, err := rand.Read(master); err != nil {
		return err
	}
	var answer string
	s, err := captcha.NewService(discard{}, master, captcha.Options{OnIssue: func(_, a string) { answer = a }})
	if err != nil {
		return err
	}
	img, err := s.New(context.Background(), "")
	if err != nil {
		return err
	}
	pic, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(img.Data, "data:image/png;base64,"))
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, pic, 0o644); err != nil {
		return err
	}
	fmt.Printf("wrote %s (answer %s)\n", path, answer)
	return nil
}
