package server_test

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"

	"concord/server/servertest"
)

// TestConnectJSONErrorsNameTheProblem calls Match over Connect JSON with curl, as an integrator
// without a Concord SDK would: an enum name the API does not define, and a hash written in
// hexadecimal where JSON carries bytes in base64, are refused with InvalidArgument messages that
// say so and what to send; a correct request, and one with a field this hub does not know, are
// answered.
func TestConnectJSONErrorsNameTheProblem(t *testing.T) {
	t.Parallel()
	n := servertest.Start(t, servertest.Options{})
	files := n.PartnerTLS("videoshare")
	const sha = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
	raw, _ := hex.DecodeString(sha)
	shaBase64 := base64.StdEncoding.EncodeToString(raw)
	call := func(body string) (code, message string) {
		t.Helper()
		out, err := run(t, "curl", "-sS", "--cacert", files.CA, "--cert", files.Cert, "--key", files.Key,
			"-H", "Content-Type: application/json", "-d", body, "https://"+n.HTTPAddr()+"/concord.v1.MatchService/Match")
		if err != nil {
			t.Fatal(err)
		}
		var e struct {
			Code    string `json:"code"`
			Message string `json:"message"`
			Results []any  `json:"results"`
		}
		if err := json.Unmarshal([]byte(out), &e); err != nil {
			t.Fatalf("not JSON: %q", out)
		}
		if e.Code == "" && len(e.Results) == 1 {
			return "ok", ""
		}
		return e.Code, e.Message
	}
	for _, tc := range []struct {
		name, body string
		code       string
		want       []string
	}{
		{"unknown enum name", `{"hashes":[{"kind":"HASH_KIND_SHA265","value":"` + shaBase64 + `"}]}`, "invalid_argument",
			[]string{`hashes[0].kind: "HASH_KIND_SHA265" is not a HashKind`, "HASH_KIND_SHA256", "HASH_KIND_PDQ"}},
		{"hex in a bytes field", `{"hashes":[{"kind":"HASH_KIND_SHA256","value":"` + sha + `"}]}`, "invalid_argument",
			[]string{"hashes[0].value", "hexadecimal", "base64", shaBase64}},
		{"hex in a PDQ frame list", `{"hashes":[{"kind":"HASH_KIND_PDQ_VIDEO","quality":90,"value":"` + sha + sha + `"}]}`, "invalid_argument",
			[]string{"hashes[0].value", "hexadecimal"}},
		{"a correct request", `{"hashes":[{"kind":"HASH_KIND_SHA256","value":"` + shaBase64 + `"}]}`, "ok", nil},
		{"a field this hub does not know", `{"hashes":[{"kind":"HASH_KIND_SHA256","value":"` + shaBase64 + `"}],"newer_option":true}`, "ok", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, message := call(tc.body)
			if code != tc.code {
				t.Fatalf("code %q (%s), want %q", code, message, tc.code)
			}
			for _, w := range tc.want {
				if !strings.Contains(message, w) {
					t.Errorf("message %q does not say %q", message, w)
				}
			}
		})
	}
}
