package app_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/verifykit/verifykit/internal/app"
	"github.com/verifykit/verifykit/internal/apptest"
)

// TestSMSPumpingAttack simulates SMS pumping against DynamoDB Local through
// the HTTP handler: a bot sends codes to 200 fresh numbers of one prefix from
// 200 IPs and verifies none (solving a captcha whenever it is asked for one),
// while real users send to numbers of another prefix and verify 80 % of
// their codes. With the breaker on (PUMPING_UNVERIFIED_LIMIT=20), the bot's
// prefix turns suspect after 20 unverified sends and blocked after 60, the
// real users never see a refusal, and the outbox (the provider) holds 60 of
// the bot's messages. With the breaker off, all 200 go out: the bill the
// breaker saved.
func TestSMSPumpingAttack(t *testing.T) {
	const (
		botNumbers  = 200
		realUsers   = 100
		limit       = 20
		botPrefix   = "8613800"
		realPrefix  = "8613900"
		wantBotSMS  = 3 * limit // suspect costs the bot a captcha per send, blocked stops it
		wantRealSMS = realUsers
	)
	for _, tc := range []struct {
		name                         string
		limit                        string
		wantBot, wantCaptcha, wantBl int
	}{
		{"breaker on", fmt.Sprint(limit), wantBotSMS, wantBotSMS - limit, botNumbers - wantBotSMS},
		{"breaker off", "0", botNumbers, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := apptest.NewDynamo(t, map[string]string{"PUMPING_UNVERIFIED_LIMIT": tc.limit}, nil, app.Options{DynamoOptions: patient})
			refusals := map[string]int{} // the bot's, by error
			var realRefusals []string
			for i := range max(botNumbers, realUsers) {
				s.Clock.Advance(time.Second)
				if i < botNumbers {
					// The bot: a fresh number and a fresh IP each time; on
					// captcha_required it solves one and sends again.
					ip := fmt.Sprintf("198.51.%d.%d", 100+i/250, i%250+1)
					body := fmt.Sprintf(`{"target":"ANY","phone_number":"+%s%06d"}`, botPrefix, i)
					st, _, b := s.Do(t, "POST", sendPath, ip, body, nil)
					if st != 200 {
						refusals[fmt.Sprint(b["error"])]++
					}
					if b["error"] == "captcha_required" {
						hdr := map[string]string{"x-captcha-token": solveCaptcha(t, s, ip)}
						if st, _, b = s.Do(t, "POST", sendPath, ip, body, hdr); st != 200 {
							refusals[fmt.Sprint(b["error"])+" with captcha"]++
						}
					}
				}
				if i < realUsers {
					// A real user: one send, and four in five verify.
					ip := fmt.Sprintf("203.0.%d.%d", 113+i/250, i%250+1)
					st, _, b := s.Do(t, "POST", sendPath, ip, fmt.Sprintf(`{"target":"ANY","phone_number":"+%s%06d"}`, realPrefix, i), nil)
					if st != 200 {
						realRefusals = append(realRefusals, fmt.Sprintf("send %d: %d %v", i, st, b))
						continue
					}
					if i%5 == 0 {
						continue
					}
					verify := fmt.Sprintf(`{"verification_id":%q,"verification_code":%q}`, b["verification_id"], s.LastCode(t))
					if st, _, b := s.Do(t, "POST", verifyPath, ip, verify, nil); st != 200 {
						realRefusals = append(realRefusals, fmt.Sprintf("verify %d: %d %v", i, st, b))
					}
				}
			}

			sent := map[string]int{}
			for _, m := range s.Outbox.Messages() {
				sent[m.To[1:8]]++
			}
			t.Logf("SMS that reached the provider: bot %d, real users %d; bot refusals %v", sent[botPrefix], sent[realPrefix], refusals)
			if len(realRefusals) > 0 {
				t.Errorf("real users were refused: %v", realRefusals)
			}
			if sent[botPrefix] != tc.wantBot || sent[realPrefix] != wantRealSMS {
				t.Errorf("SMS sent: bot %d, real users %d; want %d and %d", sent[botPrefix], sent[realPrefix], tc.wantBot, wantRealSMS)
			}
			// Each of sends 21-60 first met captcha_required and went out
			// with a captcha; every later one met destination_blocked, which
			// a captcha does not lift.
			wantRefusals := map[string]int{}
			if tc.wantCaptcha > 0 {
				wantRefusals["captcha_required"] = tc.wantCaptcha
			}
			if tc.wantBl > 0 {
				wantRefusals["destination_blocked"] = tc.wantBl
			}
			if fmt.Sprint(refusals) != fmt.Sprint(wantRefusals) {
				t.Errorf("bot refusals %v, want %v", refusals, wantRefusals)
			}

			// Each transition is logged once, with the prefix, its country
			// and counts.
			trips := transitions(t, s.Stdout.String())
			wantTrips := []string{}
			if tc.wantCaptcha > 0 {
				wantTrips = []string{"8613800 CN healthy->suspect 20/0", "8613800 CN suspect->blocked 60/0"}
			}
			if fmt.Sprint(trips) != fmt.Sprint(wantTrips) {
				t.Errorf("breaker log %v, want %v", trips, wantTrips)
			}
			if tc.wantCaptcha == 0 {
				return
			}
			// An hour later the window has cooled: the prefix is healthy
			// again, and the first send that shows it is logged.
			s.Clock.Advance(time.Hour)
			if st, _, b := s.Do(t, "POST", sendPath, "192.0.2.200", `{"target":"ANY","phone_number":"+8613800999999"}`, nil); st != 200 {
				t.Fatalf("send to the cooled prefix: %d %v", st, b)
			}
			trips = transitions(t, s.Stdout.String())
			if got := trips[len(trips)-1]; got != "8613800 CN blocked->healthy" {
				t.Errorf("last breaker log %q, want the way back to healthy", got)
			}
		})
	}
}

// transitions reads the breaker's log lines: "prefix country from->to
// unverified/verified".
func transitions(t *testing.T, logs string) []string {
	t.Helper()
	var out []string
	for _, line := range strings.Split(logs, "\n") {
		if !strings.Contains(line, `"sms pumping breaker"`) {
			continue
		}
		var l struct {
			Prefix, Country, From, To string
			Unverified, Verified      *int
		}
		if err := json.Unmarshal([]byte(line), &l); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		s := fmt.Sprintf("%s %s %s->%s", l.Prefix, l.Country, l.From, l.To)
		if l.Unverified != nil && l.Verified != nil {
			s += fmt.Sprintf(" %d/%d", *l.Unverified, *l.Verified)
		}
		out = append(out, s)
	}
	return out
}
