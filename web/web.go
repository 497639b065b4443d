// Package web holds the browser side: verifykit.js, the client module apps
// use (typed by verifykit.d.ts), and the demo page the local server serves
// at / (index.html and demo.js).
package web

import "embed"

// Files are the page, its script and the client module.
//
//go:embed index.html demo.js verifykit.js
var Files embed.FS
