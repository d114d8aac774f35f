package main

import (
	"fmt"
	"time"

	"concierge/enroll"
	"concierge/seal"
	"concierge/sqlite"
)

// EnrollConfig is how long face data is kept and when its amount needs
// the operator's attention (docs/security.md).
type EnrollConfig struct {
	// Retention deletes the templates of customers not recognised (or,
	// never recognised, not enrolled) for this long; 0 keeps them until
	// the customer withdraws.
	Retention time.Duration `yaml:"retention"`
	// FilingWarnAt warns (log and gauge) once this many people's face
	// data is stored; the CAC filing duty starts at 100,000.
	FilingWarnAt int `yaml:"filing_warn_at"`
	// DefaultScope is the consent scope of an enrollment that names none:
	// branch (templates never leave the box) or network (docs/branches.md).
	DefaultScope string `yaml:"default_scope"`
}

// KeysConfig says where the template key file is.
type KeysConfig struct {
	// TemplateFile holds the keys that seal face templates, used when
	// neither CONCIERGE_TEMPLATE_KEY nor the systemd credential
	// template.key is given; made (0600) at first start. Empty:
	// template.key beside db.
	TemplateFile string `yaml:"template_file"`
}

func defaultEnrollConfig() EnrollConfig {
	return EnrollConfig{Retention: 2 * 365 * 24 * time.Hour, FilingWarnAt: 90_000, DefaultScope: enroll.ScopeBranch}
}

// validate names the first bad enroll key.
func (e EnrollConfig) validate() error {
	switch {
	case e.Retention < 0 || e.Retention > 0 && e.Retention < 24*time.Hour:
		return fmt.Errorf("enroll.retention: %v must be 0 (keep until withdrawn) or at least 24h", e.Retention)
	case e.FilingWarnAt < 0:
		return fmt.Errorf("enroll.filing_warn_at: %d must be >= 0 (0: never warn)", e.FilingWarnAt)
	case e.DefaultScope != enroll.ScopeBranch && e.DefaultScope != enroll.ScopeNetwork:
		return fmt.Errorf("enroll.default_scope: %q is not one of: branch, network", e.DefaultScope)
	}
	return nil
}

// templateKeyFile is keys.template_file, or template.key beside db.
func (c Config) templateKeyFile() string {
	if c.Keys.TemplateFile != "" {
		return c.Keys.TemplateFile
	}
	return sqlite.DefaultKeyFile(c.DB)
}

// dbOptions opens the database with the configured template keys; every
// command that opens the database passes them.
func (c Config) dbOptions() []sqlite.Option {
	return []sqlite.Option{sqlite.WithKeySource(seal.DefaultSource(c.templateKeyFile()))}
}
