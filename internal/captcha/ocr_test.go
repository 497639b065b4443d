//go:build bench

package captcha

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// TestOCR measures how well an off-the-shelf OCR engine reads our captchas:
// the figure the README quotes. It needs tesseract (Debian: apt-get install
// tesseract-ocr) and is built only with the bench tag (make bench runs it when
// tesseract is there), because it takes a while and its result is a
// measurement, not a property of the code:
//
//	go test -tags bench -run '^TestOCR$' -v ./internal/captcha
//
// CAPTCHA_OCR_N sets the number of images (default 50); CAPTCHA_OCR_LENGTH
// the characters per image (default DefaultLength, as CAPTCHA_LENGTH does);
// CAPTCHA_OCR_DIR keeps the images there for a look. Every image is read with several Tesseract
// configurations, on the raw picture and on a cleaned one (binarised, specks
// and hairlines removed by a median filter, enlarged): an attacker picks the
// best, so the test reports and bounds the best.
func TestOCR(t *testing.T) {
	if _, err := exec.LookPath("tesseract"); err != nil {
		t.Fatalf("tesseract not found: %v (apt-get install -y tesseract-ocr)", err)
	}
	n := 50
	if v := os.Getenv("CAPTCHA_OCR_N"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1 {
			t.Fatalf("CAPTCHA_OCR_N=%q: want a positive integer", v)
		}
	}
	answerLen := DefaultLength
	if v := os.Getenv("CAPTCHA_OCR_LENGTH"); v != "" {
		var err error
		if answerLen, err = strconv.Atoi(v); err != nil || answerLen < MinLength || answerLen > MaxLength {
			t.Fatalf("CAPTCHA_OCR_LENGTH=%q: want %d to %d", v, MinLength, MaxLength)
		}
	}
	dir := os.Getenv("CAPTCHA_OCR_DIR")
	if dir == "" {
		dir = t.TempDir()
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}

	type sample struct {
		answer           string
		raw, clean, thin string // file paths
	}
	samples := make([]sample, n)
	for i := range samples {
		answer, pic, err := render(answerLen)
		if err != nil {
			t.Fatal(err)
		}
		s := sample{
			answer: answer,
			raw:    filepath.Join(dir, fmt.Sprintf("%02d-%s.png", i, answer)),
			clean:  filepath.Join(dir, fmt.Sprintf("%02d-%s-clean.png", i, answer)),
			thin:   filepath.Join(dir, fmt.Sprintf("%02d-%s-thin.png", i, answer)),
		}
		if err := os.WriteFile(s.raw, pic, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := writeCleaned(s.clean, pic, false); err != nil {
			t.Fatal(err)
		}
		if err := writeCleaned(s.thin, pic, true); err != nil {
			t.Fatal(err)
		}
		samples[i] = s
	}

	whitelist := "tessedit_char_whitelist=" + alphabet + strings.ToLower(alphabet)
	type config struct {
		name  string
		input int // 0 raw, 1 cleaned, 2 cleaned and thinned
		args  []string
	}
	var configs []config
	for input, suffix := range []string{"", " (cleaned)", " (cleaned, thinned)"} {
		for _, psm := range []string{"7", "8", "13"} {
			for _, wl := range []bool{false, true} {
				c := config{input: input, args: []string{"--psm", psm}}
				c.name = "psm " + psm
				if wl {
					c.args = append(c.args, "-c", whitelist)
					c.name += " +whitelist"
				}
				c.name += suffix
				configs = append(configs, c)
			}
		}
	}

	type result struct {
		name         string
		exact, chars int
	}
	results := make([]result, len(configs))
	// anyRead[i] is set when some configuration read sample i exactly: an
	// attacker has MaxAttempts tries, so reads from several configurations
	// are worth that many guesses.
	anyRead := make([]bool, n)
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, runtime.NumCPU())
	for ci, c := range configs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			files := make([]string, n)
			for i, s := range samples {
				files[i] = [...]string{s.raw, s.clean, s.thin}[c.input]
			}
			reads := tesseract(t, dir, files, c.args)
			r := result{name: c.name}
			for i, s := range samples {
				got := strings.ToUpper(strings.Join(strings.Fields(reads[i]), ""))
				if got == s.answer {
					r.exact++
					mu.Lock()
					anyRead[i] = true
					mu.Unlock()
				}
				r.chars += max(0, answerLen-levenshtein(got, s.answer))
			}
			results[ci] = r
		}()
	}
	wg.Wait()

	sort.SliceStable(results, func(i, j int) bool {
		if results[i].exact != results[j].exact {
			return results[i].exact > results[j].exact
		}
		return results[i].chars > results[j].chars
	})
	for _, r := range results {
		t.Logf("%-40s %2d/%d exact, %3.0f%% of characters", r.name, r.exact, n,
			100*float64(r.chars)/float64(n*answerLen))
	}
	best := results[0]
	t.Logf("best: %s: %d/%d exact (%.0f%%), %.0f%% of characters", best.name, best.exact, n,
		100*float64(best.exact)/float64(n), 100*float64(best.chars)/float64(n*answerLen))
	anyN := 0
	for _, ok := range anyRead {
		if ok {
			anyN++
		}
	}
	t.Logf("read exactly by at least one configuration: %d/%d", anyN, n)
	// "At most a few of 50": more than 10% exact means the options need
	// another round of tuning.
	if best.exact*10 > n {
		t.Errorf("best OCR configuration read %d/%d captchas exactly; want at most 10%%", best.exact, n)
	}
}

// tesseract reads files with one Tesseract process (starting one per image
// would cost a second each) and returns the text of each. Tesseract sometimes
// crashes on an odd image; then each file is read alone and a crash counts
// as an empty read.
func tesseract(t *testing.T, dir string, files, args []string) []string {
	list, err := os.CreateTemp(dir, "list-*.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer os.Remove(list.Name())
	if _, err := list.WriteString(strings.Join(files, "\n") + "\n"); err != nil {
		t.Fatal(err)
	}
	list.Close()
	run := func(input string) (string, error) {
		cmd := exec.Command("tesseract", append([]string{input, "-"}, args...)...)
		cmd.Env = append(os.Environ(), "OMP_THREAD_LIMIT=1")
		out, err := cmd.Output()
		return string(out), err
	}
	// The text renderer ends each page with a form feed.
	if out, err := run(list.Name()); err == nil {
		pages := strings.Split(out, "\f")
		if len(pages) >= len(files) {
			return pages[:len(files)]
		}
	}
	reads := make([]string, len(files))
	for i, f := range files {
		reads[i], _ = run(f)
	}
	return reads
}

// writeCleaned writes the attacker's cleaned copy of a captcha: every pixel
// whose colour is far from the background is ink; with thin, ink pixels with
// fewer than three ink neighbours (one-pixel curves) are dropped; then specks
// (the noise dots); the rest is drawn black on white and enlarged three
// times, which Tesseract prefers.
func writeCleaned(path string, pic []byte, thin bool) error {
	img, err := png.Decode(bytes.NewReader(pic))
	if err != nil {
		return err
	}
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	// The background is the most common colour.
	counts := map[color.Color]int{}
	var back color.Color
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			c := img.At(x, y)
			counts[c]++
			if back == nil || counts[c] > counts[back] {
				back = c
			}
		}
	}
	br, bg, bb, _ := back.RGBA()
	ink := make([]bool, w*h)
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			r, g, bl, _ := img.At(b.Min.X+x, b.Min.Y+y).RGBA()
			d := absDiff(r, br) + absDiff(g, bg) + absDiff(bl, bb)
			ink[y*w+x] = d > 3*0x4000
		}
	}
	passes := 0
	if thin {
		passes = 1
	}
	at := func(m []bool, x, y int) bool { return x >= 0 && y >= 0 && x < w && y < h && m[y*w+x] }
	for range passes {
		next := make([]bool, w*h)
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				if !ink[y*w+x] {
					continue
				}
				c := 0
				for dy := -1; dy <= 1; dy++ {
					for dx := -1; dx <= 1; dx++ {
						if (dx != 0 || dy != 0) && at(ink, x+dx, y+dy) {
							c++
						}
					}
				}
				next[y*w+x] = c >= 3
			}
		}
		ink = next
	}
	// Drop connected specks of fewer than 12 pixels.
	seen := make([]bool, w*h)
	for i := range ink {
		if !ink[i] || seen[i] {
			continue
		}
		comp, stack := []int{}, []int{i}
		seen[i] = true
		for len(stack) > 0 {
			p := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			comp = append(comp, p)
			x, y := p%w, p/w
			for dy := -1; dy <= 1; dy++ {
				for dx := -1; dx <= 1; dx++ {
					q := (y+dy)*w + x + dx
					if at(ink, x+dx, y+dy) && !seen[q] {
						seen[q] = true
						stack = append(stack, q)
					}
				}
			}
		}
		if len(comp) < 12 {
			for _, p := range comp {
				ink[p] = false
			}
		}
	}
	const k = 3
	out := image.NewGray(image.Rect(0, 0, k*w, k*h))
	for y := 0; y < k*h; y++ {
		for x := 0; x < k*w; x++ {
			v := uint8(255)
			if ink[(y/k)*w+x/k] {
				v = 0
			}
			out.SetGray(x, y, color.Gray{Y: v})
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, out); err != nil {
		return err
	}
	return os.WriteFile(path, buf.Bytes(), 0o644)
}

func absDiff(a, b uint32) uint32 {
	if a > b {
		return a - b
	}
	return b - a
}

// levenshtein is the edit distance of two strings of bytes.
func levenshtein(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
