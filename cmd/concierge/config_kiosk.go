package main

import (
	"fmt"
	"time"

	"concierge/kiosk"
)

// KioskConfig is the enrollment kiosks' API and page (docs/kiosk.md).
// Without devices both are disabled.
type KioskConfig struct {
	// Devices are the kiosks allowed to enroll and withdraw, each with its
	// own bearer token. Keep tokens out of the file: token: ${KIOSK_1_TOKEN}.
	Devices []KioskDevice `yaml:"devices"`
	// RatePerSecond and Burst are each kiosk's request budget.
	RatePerSecond float64 `yaml:"rate_per_second"`
	Burst         int     `yaml:"burst"`
	// MaxUploadBytes bounds one photo or one liveness sequence.
	MaxUploadBytes int64 `yaml:"max_upload_bytes"`
	// SessionTTL ends an unfinished enrollment; nothing of it is stored.
	SessionTTL time.Duration `yaml:"session_ttl"`
	// PhotosNeeded usable photos make an enrollment.
	PhotosNeeded int `yaml:"photos_needed"`
	// ConsentDir holds the bank's own consent texts, <lang>.txt (zh.txt,
	// en.txt), of version ConsentVersion. Empty: the built-in texts.
	ConsentDir     string `yaml:"consent_dir"`
	ConsentVersion string `yaml:"consent_version"`
	// ChallengeTTL is how long after a liveness challenge is shown its
	// frames may arrive, by the daemon's clock.
	ChallengeTTL time.Duration `yaml:"challenge_ttl"`
}

// KioskDevice is one kiosk.
type KioskDevice struct {
	ID    string `yaml:"id"`
	Token string `yaml:"token"`
}

func defaultKioskConfig() KioskConfig {
	d := kiosk.DefaultConfig()
	return KioskConfig{
		RatePerSecond:  d.RatePerSecond,
		Burst:          d.Burst,
		MaxUploadBytes: d.MaxUploadBytes,
		SessionTTL:     d.SessionTTL,
		PhotosNeeded:   d.PhotosNeeded,
		ChallengeTTL:   d.ChallengeTTL,
	}
}

// api is the kiosk package's view of the section.
func (k KioskConfig) api() kiosk.Config {
	c := kiosk.DefaultConfig()
	c.RatePerSecond, c.Burst = k.RatePerSecond, k.Burst
	c.MaxUploadBytes, c.SessionTTL, c.PhotosNeeded = k.MaxUploadBytes, k.SessionTTL, k.PhotosNeeded
	c.MaxPhotos = max(c.MaxPhotos, k.PhotosNeeded)
	c.ChallengeTTL = k.ChallengeTTL
	for _, d := range k.Devices {
		c.Devices = append(c.Devices, kiosk.Device{ID: d.ID, Token: d.Token})
	}
	return c
}

// validate names the first bad kiosk key.
func (k KioskConfig) validate() error {
	switch {
	case k.RatePerSecond <= 0:
		return fmt.Errorf("kiosk.rate_per_second: %v must be > 0", k.RatePerSecond)
	case k.Burst < 1:
		return fmt.Errorf("kiosk.burst: %d must be >= 1", k.Burst)
	case k.MaxUploadBytes < 64<<10:
		return fmt.Errorf("kiosk.max_upload_bytes: %d must be at least 65536", k.MaxUploadBytes)
	case k.SessionTTL < time.Minute:
		return fmt.Errorf("kiosk.session_ttl: %v must be at least 1m", k.SessionTTL)
	case k.ChallengeTTL < 5*time.Second || k.ChallengeTTL > 5*time.Minute:
		return fmt.Errorf("kiosk.challenge_ttl: %v must be 5s-5m", k.ChallengeTTL)
	case k.PhotosNeeded < 1 || k.PhotosNeeded > 10:
		return fmt.Errorf("kiosk.photos_needed: %d must be 1-10", k.PhotosNeeded)
	case k.ConsentDir != "" && k.ConsentVersion == "":
		return fmt.Errorf("kiosk.consent_version: must name the version of the texts in kiosk.consent_dir")
	case k.ConsentDir == "" && k.ConsentVersion != "" && k.ConsentVersion != kiosk.BuiltinConsentVersion:
		return fmt.Errorf("kiosk.consent_version: %q needs kiosk.consent_dir (the built-in texts are %s)", k.ConsentVersion, kiosk.BuiltinConsentVersion)
	}
	ids, tokens := map[string]bool{}, map[string]bool{}
	for i, d := range k.Devices {
		switch {
		case d.ID == "":
			return fmt.Errorf("kiosk.devices[%d].id: must be set", i)
		case ids[d.ID]:
			return fmt.Errorf("kiosk.devices[%d].id: duplicate %q", i, d.ID)
		case len(d.Token) < 32:
			return fmt.Errorf("kiosk.devices[%d].token (%s): at least 32 characters, e.g. from `openssl rand -hex 16`", i, d.ID)
		case tokens[d.Token]:
			return fmt.Errorf("kiosk.devices[%d].token (%s): every kiosk needs its own token", i, d.ID)
		}
		ids[d.ID], tokens[d.Token] = true, true
	}
	return nil
}
