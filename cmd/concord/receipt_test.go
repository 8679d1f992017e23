package main

import (
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"concord/internal/pki"
	"concord/server/servertest"
)

// TestReceiptsKeptAndVerifiedOffline: writes save their receipts with --receipt; `log
// verify-receipt` checks them with the log key alone, calling no node, and refuses
// a receipt with its entry, index or checkpoint changed, or without the witness cosignatures
// it is asked for.
func TestReceiptsKeptAndVerifiedOffline(t *testing.T) {
	n := servertest.Start(t, servertest.Options{})
	dir := t.TempDir()
	submitted := filepath.Join(dir, "submit.json")
	rec := cliRecord(t, mustCLI(t, n, "fr-pharos", "notice", "submit", "--basis", "fr.lcen.6-1", "--category", "ATTACK_FOOTAGE",
		"--hash", "sha256:"+strings.Repeat("ab", 32), "--json", "--receipt", submitted))
	id := rec.GetNotice().GetNoticeId()
	endorsed := filepath.Join(dir, "endorse.json")
	mustCLI(t, n, "de-bka", "notice", "endorse", id, "--basis", "de.stgb.131", "--receipt", endorsed)
	acted := filepath.Join(dir, "action.json")
	mustCLI(t, n, "videoshare", "action", "report", id, "--outcome", "REMOVED", "--jurisdiction", "FR", "--receipt", acted)
	logKey := pki.Layout{Dir: n.PKI.Dir}.LogPub()
	witness := pki.Layout{Dir: n.PKI.Dir}.WitnessPub("observatory")
	// From here no command is told where a node is: the checks use the files alone (the
	// default address, 127.0.0.1:7443, has no node in tests).

	for _, f := range []string{submitted, endorsed, acted} {
		out, stderr, status := runConcordStatus(t, nil, "log", "verify-receipt", f, "--log-key", logKey)
		if status != 0 || !strings.Contains(out, "verifies: entry ") || !strings.Contains(out, "signed by the log key") {
			t.Fatalf("verify-receipt %s: status %d\n%s%s", filepath.Base(f), status, out, stderr)
		}
	}
	out, _, _ := runConcordStatus(t, nil, "log", "verify-receipt", submitted, "--log-key", logKey, "--json")
	var summary struct {
		Verified    bool   `json:"verified"`
		PayloadType string `json:"payload_type"`
	}
	if err := json.Unmarshal([]byte(out), &summary); err != nil || !summary.Verified || !strings.Contains(summary.PayloadType, "notice") {
		t.Fatalf("verify-receipt --json: %v\n%s", err, out)
	}

	// Tampered copies.
	var receipt map[string]any
	data, err := os.ReadFile(submitted)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &receipt); err != nil {
		t.Fatal(err)
	}
	tamper := func(name string, change func(r map[string]any)) string {
		r := map[string]any{}
		b, _ := json.Marshal(receipt)
		_ = json.Unmarshal(b, &r)
		change(r)
		b, _ = json.Marshal(r)
		path := filepath.Join(dir, name+".json")
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	for name, change := range map[string]func(r map[string]any){
		"entry": func(r map[string]any) {
			e, _ := base64.StdEncoding.DecodeString(r["entry"].(string))
			e[len(e)-1] ^= 1
			r["entry"] = base64.StdEncoding.EncodeToString(e)
		},
		"index": func(r map[string]any) { r["index"] = "0" },
		"checkpoint": func(r map[string]any) {
			cp := r["checkpoint"].(map[string]any)
			lines := strings.SplitN(cp["note"].(string), "\n", 3)
			lines[1] = "999999"
			cp["note"] = strings.Join(lines, "\n")
		},
		"proof": func(r map[string]any) {
			p := r["inclusionProof"].([]any)
			p[0] = base64.StdEncoding.EncodeToString(make([]byte, 32))
		},
	} {
		out, stderr, status := runConcordStatus(t, nil, "log", "verify-receipt", tamper(name, change), "--log-key", logKey)
		if status != 1 || !strings.Contains(stderr, "does not verify") {
			t.Errorf("a receipt with its %s changed: status %d\n%s%s", name, status, out, stderr)
		}
	}
	// A witness quorum the receipt's checkpoint does not meet (no witness cosigned it).
	_, stderr, status := runConcordStatus(t, nil, "log", "verify-receipt", submitted, "--log-key", logKey, "--witness", witness, "--quorum", "1")
	if status != 1 || !strings.Contains(stderr, "not the witnesses") {
		t.Fatalf("verify-receipt --quorum 1 of an uncosigned checkpoint: status %d\n%s", status, stderr)
	}
	// Not a receipt at all.
	_, stderr, status = runConcordStatus(t, nil, "log", "verify-receipt", logKey, "--log-key", logKey)
	if status != 1 || !strings.Contains(stderr, "is not a receipt") {
		t.Fatalf("verify-receipt of the log key: status %d\n%s", status, stderr)
	}
}
