package app

import (
	"fmt"
	"log/slog"
	"os"

	"github.com/redis/go-redis/v9"

	"gqlauth/apq"
	"gqlauth/config"
	"gqlauth/graph"
	"gqlauth/observe"
)

// newPersisted builds the trusted-documents and APQ settings of graph: the manifest of
// TRUSTED_DOCUMENTS_FILE, read and checked now, so a missing, malformed or tampered manifest stops the
// start; and, unless TRUSTED_DOCUMENTS=require or APQ_CACHE_SIZE=0, the APQ cache (in memory, in front
// of Redis when client is not nil).
func newPersisted(cfg *config.Config, client *redis.Client, metrics *observe.Metrics, log *slog.Logger) (graph.Persisted, error) {
	p := graph.Persisted{Mode: graph.TrustedMode(cfg.TrustedDocuments), MaxAPQBytes: cfg.APQMaxDocumentBytes}
	if cfg.TrustedDocumentsFile != "" {
		data, err := os.ReadFile(cfg.TrustedDocumentsFile)
		if err != nil {
			return p, fmt.Errorf("TRUSTED_DOCUMENTS_FILE: %w", err)
		}
		if p.Manifest, err = graph.ParseManifest(data); err != nil {
			return p, fmt.Errorf("TRUSTED_DOCUMENTS_FILE %s: %w", cfg.TrustedDocumentsFile, err)
		}
		log.Info("trusted documents loaded", "mode", cfg.TrustedDocuments, "documents", p.Manifest.Len())
	}
	if p.Mode == graph.TrustedAllow {
		p.OnUntrusted = metrics.UntrustedOperations()
	}
	if p.Mode == graph.TrustedRequire || cfg.APQCacheSize == 0 {
		return p, nil
	}
	mem, err := apq.NewMemory(cfg.APQCacheSize)
	if err != nil {
		return p, fmt.Errorf("APQ_CACHE_SIZE: %w", err)
	}
	p.APQ = mem
	if client != nil {
		r := apq.NewRedis(client, mem, cfg.APQRedisTTL, log)
		r.OnChange = metrics.Dependency("redis", "apq")
		p.APQ = r
	}
	return p, nil
}
