package captcha

import (
	"bytes"
	"fmt"
	"image/color"
	"strings"

	draw "github.com/steambap/captcha"
)

// alphabet holds the characters a captcha shows: upper-case letters and
// digits, without any that a person could take for another character, since
// a misreading costs one of three attempts. Left out: 0 O Q D (round shapes),
// 1 I J (bars), 2 Z, 5 S, 6 G, 8 B, 9 (g, q), U (V); and, in the drawing
// library's font, Comismsh, T (reads as I) and N (reads as H or M). M and W
// are left out because they are wide enough to run off the right edge in the
// last place. Only upper case is drawn; the answer is compared
// case-insensitively. With the default 5 characters, 15^5 is 759,375 texts,
// so three blind guesses succeed about once in 250,000 captchas; with 4 (the
// CloudBase JS SDK's built-in box), 15^4 is 50,625, about once in 17,000
// (docs/security-captcha.md weighs that).
const alphabet = "ACEFHKLPRVXY347"

// The picture: size, default text length and the obfuscation options. They
// were tuned against Tesseract (TestOCR) while checking samples by eye:
// larger letters, fewer curves or less noise made the letters easier for
// people and for the OCR alike. Change them only with a new measurement (see
// the README). The width leaves room for the library's placement, which can
// start the last letter at 90% of the width. The length is CAPTCHA_LENGTH,
// MinLength to MaxLength.
const (
	imageWidth    = 240
	imageHeight   = 60
	DefaultLength = 5
	MinLength     = 4
	MaxLength     = 6
)

// options configure the drawing library for one captcha of length
// characters.
func options(length int) func(o *draw.Options) {
	return func(o *draw.Options) { drawOptions(o, length) }
}

func drawOptions(o *draw.Options, length int) {
	o.CharPreset = alphabet
	o.TextLength = length
	// Opaque, so the image reads the same on a dark page as on a light one
	// (the library's default is transparent).
	o.BackgroundColor = color.RGBA{R: 0xf4, G: 0xf4, B: 0xf0, A: 0xff}
	// Dark, saturated inks that stand out against the background for a
	// person. Curves take the same inks as the letters, so an attacker
	// cannot strip them by colour.
	o.Palette = palette
	o.CurveNumber = 3
	o.Noise = 1.5
	o.FontScale = 0.75
}

// palette is the set of inks for letters and curves.
var palette = color.Palette{
	color.RGBA{R: 0x1f, G: 0x3a, B: 0x93, A: 0xff}, // blue
	color.RGBA{R: 0x8b, G: 0x1e, B: 0x3f, A: 0xff}, // crimson
	color.RGBA{R: 0x1b, G: 0x6e, B: 0x3a, A: 0xff}, // green
	color.RGBA{R: 0x5b, G: 0x2a, B: 0x86, A: 0xff}, // purple
	color.RGBA{R: 0x8a, G: 0x4b, B: 0x08, A: 0xff}, // brown
	color.RGBA{R: 0x0e, G: 0x5e, B: 0x6f, A: 0xff}, // teal
	color.RGBA{R: 0x33, G: 0x33, B: 0x33, A: 0xff}, // charcoal
}

// render draws a new captcha and returns its answer and PNG.
//
// The drawing library picks the text itself with math/rand's top-level
// functions. Since Go 1.22 those draw from the runtime's ChaCha8 generator,
// seeded from the operating system, and since Go 1.24 (this module is
// go 1.26) the library's rand.Seed(time) call in its init is a no-op, so the
// answer is not predictable from the time. TestAnswerIsNotSeeded guards that;
// running with GODEBUG=randseednop=0 would break it.
func render(length int) (answer string, pic []byte, err error) {
	if length < MinLength || length > MaxLength {
		return "", nil, fmt.Errorf("captcha length %d outside %d-%d", length, MinLength, MaxLength)
	}
	d, err := draw.New(imageWidth, imageHeight, options(length))
	if err != nil {
		return "", nil, err
	}
	if len(d.Text) != length || strings.Trim(d.Text, alphabet) != "" {
		return "", nil, fmt.Errorf("unexpected captcha text shape (%d characters)", len(d.Text))
	}
	var b bytes.Buffer
	if err := d.WriteImage(&b); err != nil {
		return "", nil, err
	}
	return d.Text, b.Bytes(), nil
}
