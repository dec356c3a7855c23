package main

import (
	"bytes"
	"context"
	"flag"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// TestReportsGolden: the summary and the soak report of fixed inputs are exactly the text in
// testdata/*.golden.md, byte for byte.
func TestReportsGolden(t *testing.T) {
	td := func(name string) string { return filepath.Join("testdata", name) }
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"summary", []string{"-summarize", td("bench.jsonl")}},
		{"soak", []string{"-soak-report", "-commit", "abc1234", "-duration", "45s", "-note", "Postgres, GOMAXPROCS=2",
			td("soak-run.jsonl"), td("soak-samples.tsv")}},
		{"soak-unfinished", []string{"-soak-report", "-duration", "10m", td("soak-unfinished.jsonl"), td("soak-unfinished.tsv")}},
		{"soak-empty", []string{"-soak-report", os.DevNull, td("soak-unfinished.tsv")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, diag bytes.Buffer
			if code := runMain(context.Background(), tc.args, &out, &diag); code != 0 {
				t.Fatalf("exit %d: %s", code, diag.String())
			}
			golden := td(tc.name + ".golden.md")
			if *update {
				if err := os.WriteFile(golden, out.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if got := out.String(); got != string(want) {
				t.Errorf("output differs from %s:\n--- got\n%s\n--- want\n%s", golden, got, want)
			}
		})
	}
}
