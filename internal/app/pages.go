package app

import (
	"bytes"
	"strconv"

	"github.com/verifykit/verifykit/internal/config"
	"github.com/verifykit/verifykit/internal/httpapi"
	"github.com/verifykit/verifykit/web"
)

// demoPages are the files of the local server's demo page, by route. The
// page counts down from the configured cooldown after a send.
func demoPages(cfg *config.Config) (map[string]httpapi.Page, error) {
	read := func(name string) ([]byte, error) { return web.Files.ReadFile(name) }
	index, err := read("index.html")
	if err != nil {
		return nil, err
	}
	demo, err := read("demo.js")
	if err != nil {
		return nil, err
	}
	client, err := read("verifykit.js")
	if err != nil {
		return nil, err
	}
	cooldown := strconv.Itoa(int(cfg.ResendCooldown.Seconds()))
	index = bytes.Replace(index, []byte(`data-cooldown="60"`), []byte(`data-cooldown="`+cooldown+`"`), 1)
	const js = "text/javascript; charset=utf-8"
	return map[string]httpapi.Page{
		"/":             {ContentType: "text/html; charset=utf-8", Body: index},
		"/demo.js":      {ContentType: js, Body: demo},
		"/verifykit.js": {ContentType: js, Body: client},
	}, nil
}
