package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"concierge/alert"
	"concierge/checkin"
	"concierge/enroll"
	"concierge/kiosk"
	"concierge/models"
)

// Config is the whole configuration of a Concierge box: one YAML file,
// `${VAR}` references expanded from the environment, then CONCIERGE_*
// variables overriding single keys (CONCIERGE_NATS_URL sets nats.url).
// docs/config.md documents every key; deploy/concierge.yaml is an example.
type Config struct {
	Branch  string        `yaml:"branch"`
	DB      string        `yaml:"db"`
	Models  ModelsConfig  `yaml:"models"`
	Vision  VisionConfig  `yaml:"vision"`
	Match   MatchConfig   `yaml:"match"`
	NATS    NATSConfig    `yaml:"nats"`
	HTTP    HTTPConfig    `yaml:"http"`
	Cameras []Camera      `yaml:"cameras"`
	Tiering TieringConfig `yaml:"tiering"`
	Checkin CheckinConfig `yaml:"checkin"`
	Alerts  AlertsConfig  `yaml:"alerts"` // escalation and "not this person" (config_alerts.go)
	Web     WebConfig     `yaml:"web"`    // the staff lobby page (config_web.go)
	Kiosk   KioskConfig   `yaml:"kiosk"`  // the enrollment kiosks (config_kiosk.go)
	Enroll  EnrollConfig  `yaml:"enroll"` // retention of face data (config_privacy.go)
	Keys    KeysConfig    `yaml:"keys"`   // template key file (config_privacy.go)
	HQ      HQConfig      `yaml:"hq"`     // the bank's hub (config_hq.go)
	Report  ReportConfig  `yaml:"report"` // the manager's service report
	Log     LogConfig     `yaml:"log"`
}

// CheckinConfig tunes the arrival decision beyond the match rule
// (docs/checkin.md has the measurements behind the defaults).
type CheckinConfig struct {
	Votes         int `yaml:"votes"`          // embeddings of one track that must name the customer
	MaxEmbeddings int `yaml:"max_embeddings"` // per track, however long the person stays
	// MinEmbedInterval spaces a track's embeddings in frame time unless the
	// face got clearly better: the second vote of an arrival waits for it.
	MinEmbedInterval time.Duration `yaml:"min_embed_interval"`
	// ConfirmInterval replaces it once an embedding of the track names a
	// customer: the embedding that may confirm them is taken this soon,
	// from a frame detected out of turn if need be.
	ConfirmInterval time.Duration `yaml:"confirm_interval"`
	Cooldown        time.Duration `yaml:"cooldown"`      // one arrival per customer per window, unless the tier sets one
	TrackTimeout    time.Duration `yaml:"track_timeout"` // a face unseen this long has left
	Retention       time.Duration `yaml:"retention"`     // visits older than this are purged
	NameMask        string        `yaml:"name_mask"`     // surname (王*), initial, or full
}

// ModelsConfig says where model files live.
type ModelsConfig struct {
	Dir string `yaml:"dir"`
	// Mirror is the base URL of the bank's artifact store, serving the
	// model files by name (`concierge models fetch` tries it after --from
	// and before npm and the upstream downloads). It is the production
	// source of the MobileFaceNet files, which no public release carries.
	Mirror string `yaml:"mirror"`
}

// VisionConfig tunes the face engine and the quality gate for enrollment photos.
type VisionConfig struct {
	Engine    string `yaml:"engine"`      // models.Engines: auto, mobilefacenet-foamliu, mobilefacenet, dlib, embedder
	Pool      int    `yaml:"pool"`        // recognisers working at once; 0 = GOMAXPROCS
	MaxPixels int    `yaml:"max_pixels"`  // larger images are refused before decoding
	MinFacePx int    `yaml:"min_face_px"` // smaller faces are ignored
	// DetectInterval is the least time between two face detections on one
	// camera; frames in between only feed the motion gate.
	DetectInterval time.Duration `yaml:"detect_interval"`
	// Threads is how many threads OpenCV may use for one operation while
	// the daemon runs its cameras; 0 is one per CPU. One costs 20-40 % less
	// CPU per frame than two on a 2-core box (docs/benchmarks.md).
	Threads      int     `yaml:"threads"`
	MinSharpness float64 `yaml:"min_sharpness"` // enrollment photos below are "too blurry"
	MinFrontal   float64 `yaml:"min_frontal"`   // enrollment photos below are "not facing the camera"
	// CameraStaleAfter: a camera that delivered no frame for this long is
	// down, and /healthz answers 503.
	CameraStaleAfter time.Duration `yaml:"camera_stale_after"`

	// Embedder is a bank's own ONNX embedder (vision.engine: embedder)
	// and its calibration file.
	Embedder EmbedderConfig `yaml:"embedder"`

	// autoFellBack: "auto" found no MobileFaceNet files and chose dlib,
	// which recognises few East Asian faces: /healthz says so.
	autoFellBack bool
	// cal is the calibration resolveEngine loaded, for calEngine.
	cal       *enroll.Calibration
	calEngine string
}

// MatchConfig is the open-set decision rule for one face or one track.
type MatchConfig struct {
	// Threshold accepts a customer only at or below this distance. 0
	// calibrates it to the gallery's size for FalseAlertTarget, never above
	// the engine's ceiling; any other value is used as it is.
	Threshold float64 `yaml:"threshold"`
	Margin    float64 `yaml:"margin"` // ... and this much closer than the runner-up customer
	// FaceSlack: a track of several faces is decided on their fused
	// embedding under Threshold, and one face of it votes for a customer
	// up to this much farther (enroll.Rule.FaceSlack). Unset: the
	// engine's measured default; 0: every face within Threshold too.
	FaceSlack *float64 `yaml:"face_slack"`
	// FalseAlertTarget is the bank's budget of false alerts per stranger
	// visit that a calibrated threshold holds (1e-4: one in 10,000).
	FalseAlertTarget float64 `yaml:"false_alert_target"`
	// VerifyTarget is the budget of "please verify" cards per stranger
	// visit: a track that names one customer beyond the alert threshold
	// but within the band this budget calibrates asks staff instead of
	// staying silent (docs/checkin.md). 0 turns the band off; it needs a
	// calibrated threshold (match.threshold 0).
	VerifyTarget float64 `yaml:"verify_target"`
	// DuplicateThreshold refuses an enrollment whose face is this close to a
	// different customer; 0: the recognition threshold in force.
	DuplicateThreshold float64 `yaml:"duplicate_threshold"`
	// DoorTemplates is how many faces of visits staff confirmed (claimed
	// arrivals, confirmed cards) each customer keeps as door templates,
	// the oldest replaced (default maxDoorTemplates, for customers whose
	// consent text DoorConsentVersions lists); 0 learns nothing and drops
	// what was learned (config_learn.go, docs/accuracy.md).
	DoorTemplates int `yaml:"door_templates"`
	// DoorConsentVersions are the consent text versions whose wording
	// covers door templates (enroll.DoorConsents): a customer whose
	// consent in force names another learns nothing. Default: the
	// built-in texts' version (kiosk.BuiltinConsentVersion).
	DoorConsentVersions []string `yaml:"door_consent_versions"`
}

// NATSConfig: an empty URL starts an embedded server listening on Listen.
type NATSConfig struct {
	URL      string `yaml:"url"`
	Listen   string `yaml:"listen"`
	StoreDir string `yaml:"store_dir"` // JetStream storage of the embedded server
	// ServerConfig is a nats-server configuration file for the embedded
	// server (leaf node to HQ, accounts, TLS); listen and store_dir win.
	ServerConfig string `yaml:"server_config"`
	// Client credentials: at most one of user (+ password), token,
	// nkey_seed_file and creds_file. Put secrets in ${VAR}s or
	// CONCIERGE_NATS_PASSWORD / CONCIERGE_NATS_TOKEN, not in the file.
	User         string `yaml:"user"`
	Password     string `yaml:"password"`
	Token        string `yaml:"token"`
	NKeySeedFile string `yaml:"nkey_seed_file"`
	CredsFile    string `yaml:"creds_file"`
	TLSCA        string `yaml:"tls_ca"`   // CA that signs the server's certificate
	TLSCert      string `yaml:"tls_cert"` // client certificate, when the server asks for one
	TLSKey       string `yaml:"tls_key"`
	// StreamMaxAge is how long the branch's stream keeps alerts; 0 means
	// alert.DefaultStreamMaxAge (7 days).
	StreamMaxAge time.Duration `yaml:"stream_max_age"`
	// The embedded server's own side (config_nats.go): where the box's
	// generated identities live, and the server's TLS certificate, which
	// listening beyond loopback requires.
	CredentialsDir string `yaml:"credentials_dir"`
	ServerTLSCert  string `yaml:"server_tls_cert"`
	ServerTLSKey   string `yaml:"server_tls_key"`
}

// HTTPConfig is the daemon's HTTP listener (health, metrics, pages, API).
type HTTPConfig struct {
	Addr string `yaml:"addr"`
}

// Camera is one video source.
type Camera struct {
	ID     string `yaml:"id"`
	Source string `yaml:"source"` // RTSP/HTTP URL, device index, or video file path
	// Loop replays a video file forever (demos, soak tests).
	Loop bool `yaml:"loop"`
	// Fast reads a video file as fast as the pipeline takes frames instead
	// of at the file's frame rate (tests, benchmarks).
	Fast bool `yaml:"fast"`
	// ROI is the doorway polygon, [[x,y],...] in frame pixels; faces whose
	// centre is outside are ignored. Empty: the whole frame.
	ROI [][2]int `yaml:"roi"`
	// MinFacePx overrides vision.min_face_px for this camera.
	MinFacePx int `yaml:"min_face_px"`
}

// TieringConfig selects the tier scheme used for alerts.
type TieringConfig struct {
	Scheme     string `yaml:"scheme"`      // preset or custom scheme name
	SchemesDir string `yaml:"schemes_dir"` // extra scheme YAML files
}

// LogConfig controls slog output.
type LogConfig struct {
	Level  string `yaml:"level"`  // debug, info, warn, error
	Format string `yaml:"format"` // text or json
}

// DefaultConfig is what a box runs with when the file says nothing.
func DefaultConfig() Config {
	return Config{
		Branch: "b001",
		DB:     defaultDataPath("concierge.db"),
		Models: ModelsConfig{Dir: defaultModelsDir()},
		Vision: VisionConfig{
			Engine:         engineAuto,
			Pool:           runtime.GOMAXPROCS(0),
			MaxPixels:      40_000_000,
			MinFacePx:      60,
			DetectInterval: 120 * time.Millisecond,
			Threads:        1,
			MinSharpness:   100,
			MinFrontal:     0.35,

			CameraStaleAfter: 30 * time.Second,
		},
		// Zero match values take the configured engine's calibration
		// (models/engines, enroll.Calibration), so switching engines never keeps a threshold
		// measured for the other one.
		// Learning is on: the built-in consent texts cover it, and the
		// daemon checks each customer's (config_learn.go).
		Match: MatchConfig{FalseAlertTarget: 1e-4, VerifyTarget: 2e-2,
			DoorTemplates: maxDoorTemplates, DoorConsentVersions: []string{kiosk.BuiltinConsentVersion}},

		Checkin: defaultCheckinConfig(),

		NATS: NATSConfig{Listen: "127.0.0.1:4222", StoreDir: defaultDataPath("jetstream")},
		HTTP: HTTPConfig{Addr: "127.0.0.1:8080"},
		Log:  LogConfig{Level: "info", Format: "text"},

		Alerts: defaultAlertsConfig(),
		Web:    defaultWebConfig(),
		Kiosk:  defaultKioskConfig(),
		Enroll: defaultEnrollConfig(),
		Report: ReportConfig{Retention: alert.DefaultServiceRetention},
	}
}

// ReportConfig: how long the service events behind `concierge report` and
// the lobby's manager panel are kept.
type ReportConfig struct {
	Retention time.Duration `yaml:"retention"` // older service events are purged hourly
}

func defaultModelsDir() string {
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "concierge", "models")
	}
	return filepath.Join(os.TempDir(), "concierge-models")
}

func defaultDataPath(name string) string {
	if os.Geteuid() == 0 {
		return filepath.Join("/var/lib/concierge", name)
	}
	if d, err := os.UserConfigDir(); err == nil {
		return filepath.Join(filepath.Dir(d), ".local", "share", "concierge", name)
	}
	return filepath.Join(os.TempDir(), "concierge", name)
}

// ReadConfigFile parses the file at path over DefaultConfig; an empty path
// gives the defaults with environment overrides applied.
func ReadConfigFile(path string) (Config, error) {
	if path == "" {
		c := DefaultConfig()
		if err := applyEnv(&c, os.LookupEnv); err != nil {
			return c, err
		}
		return c, c.Validate()
	}
	f, err := os.Open(path)
	if err != nil {
		return Config{}, fmt.Errorf("config: %w", err)
	}
	defer f.Close()
	c, err := ParseConfig(f)
	if err != nil {
		return c, fmt.Errorf("config %s: %w", path, err)
	}
	return c, nil
}

// ParseConfig reads YAML over DefaultConfig, expands ${VAR} references,
// applies CONCIERGE_* overrides and validates the result.
func ParseConfig(r io.Reader) (Config, error) {
	c := DefaultConfig()
	raw, err := io.ReadAll(r)
	if err != nil {
		return c, err
	}
	unset := unsetRefs(string(raw), os.LookupEnv)
	raw = []byte(expandBraced(string(raw), os.Getenv))
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true) // a misspelt key is an error, not a silent default
	if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
		return c, explainYAML(err)
	}
	if err := applyEnv(&c, os.LookupEnv); err != nil {
		return c, err
	}
	return c, withUnset(c.Validate(), unset)
}

// Validate names the first bad field.
func (c Config) Validate() error {
	if c.Models.Mirror != "" {
		if _, err := models.MirrorURL(c.Models.Mirror); err != nil {
			return fmt.Errorf("models.mirror: %w", err)
		}
	}
	switch {
	case c.Branch == "" || strings.ContainsAny(c.Branch, ".*> \t"):
		return fmt.Errorf("branch: %q must be non-empty and hold no '.', '*', '>' or spaces (it is a NATS subject token)", c.Branch)
	case c.DB == "":
		return errors.New("db: must be set")
	case c.Models.Dir == "":
		return errors.New("models.dir: must be set")
	case !slices.Contains(models.Engines, c.Vision.Engine):
		return fmt.Errorf("vision.engine: %q is not one of: %s", c.Vision.Engine, strings.Join(models.Engines, ", "))
	case c.Vision.Pool < 0:
		return errors.New("vision.pool: must be >= 0")
	case c.Vision.MaxPixels <= 0:
		return errors.New("vision.max_pixels: must be > 0")
	case c.Vision.MinFacePx < 0:
		return errors.New("vision.min_face_px: must be >= 0")
	case c.Vision.Threads < 0:
		return errors.New("vision.threads: must be >= 0 (0: one per CPU)")
	case c.Vision.CameraStaleAfter <= 0:
		return fmt.Errorf("vision.camera_stale_after: %v must be > 0", c.Vision.CameraStaleAfter)
	case c.Match.Threshold < 0 || c.Match.Threshold > 2:
		return fmt.Errorf("match.threshold: %v must be in [0, 2] (0: calibrated to the gallery's size)", c.Match.Threshold)
	case c.Match.FalseAlertTarget <= 0 || c.Match.FalseAlertTarget >= 1:
		return fmt.Errorf("match.false_alert_target: %v must be a rate in (0, 1), e.g. 1e-4", c.Match.FalseAlertTarget)
	case c.Match.VerifyTarget < 0 || c.Match.VerifyTarget >= 1:
		return fmt.Errorf("match.verify_target: %v must be 0 (no verify cards) or a rate in (0, 1), e.g. 1e-2", c.Match.VerifyTarget)
	case c.Match.VerifyTarget > 0 && c.Match.VerifyTarget <= c.Match.FalseAlertTarget:
		return fmt.Errorf("match.verify_target: %v must be above match.false_alert_target %v (or 0): the band lies beyond the alert threshold", c.Match.VerifyTarget, c.Match.FalseAlertTarget)
	case c.Match.Margin < 0:
		return errors.New("match.margin: must be >= 0")
	case c.Match.FaceSlack != nil && (*c.Match.FaceSlack < 0 || *c.Match.FaceSlack > 1):
		return fmt.Errorf("match.face_slack: %v must be in [0, 1] (leave it out for the engine's default)", *c.Match.FaceSlack)
	case c.Match.DuplicateThreshold < 0:
		return errors.New("match.duplicate_threshold: must be >= 0")
	case c.Match.DoorTemplates < 0 || c.Match.DoorTemplates > maxDoorTemplates:
		return fmt.Errorf("match.door_templates: %d must be in [0, %d] (0: learn nothing from confirmed visits)", c.Match.DoorTemplates, maxDoorTemplates)
	}
	if err := c.Match.validateDoorConsents(); err != nil {
		return err
	}
	if err := c.Vision.Embedder.validate(c.Vision.Engine); err != nil {
		return err
	}
	switch {
	case c.Checkin.Votes < 1:
		return errors.New("checkin.votes: must be >= 1")
	case c.Checkin.MaxEmbeddings < c.Checkin.Votes:
		return errors.New("checkin.max_embeddings: must be >= checkin.votes")
	case c.Checkin.Cooldown < 0 || c.Checkin.TrackTimeout <= 0 || c.Checkin.Retention <= 0:
		return errors.New("checkin: cooldown must be >= 0, track_timeout and retention > 0")
	}
	if err := checkin.CheckNameMask(c.Checkin.NameMask); err != nil {
		return fmt.Errorf("checkin.name_mask: %w", err)
	}
	if err := c.NATS.validate(); err != nil {
		return err
	}
	if err := c.Alerts.validate(); err != nil {
		return err
	}
	if err := c.Enroll.validate(); err != nil {
		return err
	}
	if c.Report.Retention < 24*time.Hour {
		return fmt.Errorf("report.retention: %v must be at least 24h", c.Report.Retention)
	}
	if err := c.validateHQ(); err != nil {
		return err
	}
	seen := map[string]bool{}
	for i, cam := range c.Cameras {
		if cam.ID == "" || cam.Source == "" {
			return fmt.Errorf("cameras[%d]: id and source must be set", i)
		}
		if seen[cam.ID] {
			return fmt.Errorf("cameras[%d]: duplicate id %q", i, cam.ID)
		}
		seen[cam.ID] = true
	}
	// The daemon-only sections come last, so that a command that does not
	// use them knows everything before them is valid (Main.config).
	if err := c.Web.validate(); err != nil {
		return &sectionError{"web", err}
	}
	if err := c.Kiosk.validate(); err != nil {
		return &sectionError{"kiosk", err}
	}
	return nil
}

// applyEnv walks the config's scalar fields and sets each from
// CONCIERGE_<YAML PATH> when that variable exists: nats.url is CONCIERGE_NATS_URL.
func applyEnv(c *Config, lookup func(string) (string, bool)) error {
	return walkEnv(reflect.ValueOf(c).Elem(), "CONCIERGE", lookup)
}

func walkEnv(v reflect.Value, prefix string, lookup func(string) (string, bool)) error {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := strings.Split(f.Tag.Get("yaml"), ",")[0]
		if tag == "" || tag == "-" {
			continue
		}
		name := prefix + "_" + strings.ToUpper(tag)
		fv := v.Field(i)
		if f.Type.Kind() == reflect.Struct {
			if err := walkEnv(fv, name, lookup); err != nil {
				return err
			}
			continue
		}
		s, ok := lookup(name)
		if !ok {
			continue
		}
		if err := setScalar(fv, s); err != nil {
			return fmt.Errorf("env %s: %w", name, err)
		}
	}
	return nil
}

func setScalar(v reflect.Value, s string) error {
	if v.Type() == reflect.TypeOf(time.Duration(0)) {
		d, err := time.ParseDuration(s)
		if err != nil {
			return err
		}
		v.SetInt(int64(d))
		return nil
	}
	switch v.Kind() {
	case reflect.Pointer:
		// An optional scalar: set means given, whatever its value.
		p := reflect.New(v.Type().Elem())
		if err := setScalar(p.Elem(), s); err != nil {
			return err
		}
		v.Set(p)
	case reflect.String:
		v.SetString(s)
	case reflect.Int, reflect.Int64:
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return err
		}
		v.SetInt(n)
	case reflect.Float64:
		n, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return err
		}
		v.SetFloat(n)
	case reflect.Bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return err
		}
		v.SetBool(b)
	default:
		return nil // lists (cameras) are configured in the file only
	}
	return nil
}

// The face engines vision.engine selects (models.Engine*).
const (
	engineAuto          = models.EngineAuto
	engineDlib          = models.EngineDlib
	engineMobileFaceNet = models.EngineMobileFaceNet
	engineFoamliu       = models.EngineFoamliu
	engineEmbedder      = models.EngineEmbedder
)

func isDNNEngine(name string) bool { return models.IsONNXEngine(name) }

// EmbedderConfig is vision.embedder: a bank's own ONNX embedder
// (models.Embedder, docs/engines.md) and the calibration file measured for
// it. The calibration alone may also re-calibrate a shipped engine.
type EmbedderConfig struct {
	models.Embedder `yaml:",inline"`
	// Calibration is the file `concierge eval --folder DIR --calibrate
	// OUT` wrote for this model.
	Calibration string `yaml:"calibration"`
}

// validate checks vision.embedder against vision.engine.
func (e EmbedderConfig) validate(engine string) error {
	switch {
	case engine == engineEmbedder:
		if err := e.Embedder.Validate(); err != nil {
			return fmt.Errorf("vision.embedder.%w", err)
		}
		if e.Calibration == "" {
			return errors.New("vision.embedder.calibration: must name the calibration file measured for this model " +
				"(`concierge eval --folder DIR --calibrate OUT` writes one)")
		}
	case e.Embedder.Path != "" || e.Embedder.Model != "":
		return fmt.Errorf("vision.embedder: describes an embedder, but vision.engine is %q (set it to %s)", engine, engineEmbedder)
	}
	return nil
}

// resolveEngine turns "auto" into the engine this box can run
// (models.ResolveEngine) and loads the calibration of the engine in force:
// a missing, broken or mismatched calibration is a configuration error,
// never a silent default.
func (c *Config) resolveEngine() error {
	engine, fellBack := models.ResolveEngine(c.Vision.Engine, c.Models.Dir)
	c.Vision.Engine = engine
	if fellBack {
		c.Vision.autoFellBack = true
	}
	if c.Vision.cal != nil && c.Vision.calEngine == engine {
		return nil
	}
	cal, err := c.loadCalibration()
	if err != nil {
		return err
	}
	c.Vision.cal, c.Vision.calEngine = &cal, engine
	return nil
}

// embedderDescription is the ONNX embedder the configured engine loads;
// false for dlib.
func (c Config) embedderDescription() (models.Embedder, bool, error) {
	switch {
	case c.Vision.Engine == engineEmbedder:
		d := c.Vision.Embedder.Embedder
		if d.OutputDim != models.Dim && d.Projection == nil {
			// Its projection is in its calibration (or was just fitted:
			// fitProjection sets it).
			d.Projection = c.calibration().Projection
		}
		if err := d.Validate(); err != nil {
			return d, true, fmt.Errorf("vision.embedder.%w", err)
		}
		return d, true, nil
	case isDNNEngine(c.Vision.Engine):
		d, err := models.ShippedEmbedder(c.Vision.Engine)
		return d, true, err
	}
	return models.Embedder{}, false, nil
}

// loadCalibration reads the calibration of the configured engine: the
// shipped file of a shipped engine (models/engines, compiled in), or the
// one vision.embedder.calibration names, which must have been measured on
// the very model file in force.
func (c Config) loadCalibration() (enroll.Calibration, error) {
	var want enroll.Calibration // the model and digest the calibration must name
	if c.Vision.Engine == engineEmbedder {
		want.Model, want.SHA256 = c.Vision.Embedder.Model, c.Vision.Embedder.SHA256
	} else {
		b, err := models.ShippedCalibration(c.Vision.Engine)
		if err != nil {
			return enroll.Calibration{}, fmt.Errorf("vision.engine %q: %w", c.Vision.Engine, err)
		}
		shipped, err := enroll.ParseCalibration(bytes.NewReader(b))
		if err != nil {
			return shipped, fmt.Errorf("models/engines/%s.calibration.yaml: %w", c.Vision.Engine, err)
		}
		if c.Vision.Embedder.Calibration == "" {
			return shipped, nil
		}
		want = shipped
	}
	if c.Vision.Embedder.Calibration == "" {
		return enroll.Calibration{}, errors.New("vision.embedder.calibration: must name the calibration file measured for this model")
	}
	cal, err := enroll.ReadCalibration(c.Vision.Embedder.Calibration)
	if err == nil {
		err = cal.Check(want.Model, want.SHA256)
	}
	if err == nil {
		out := models.Dim // the shipped engines'
		if c.Vision.Engine == engineEmbedder {
			out = c.Vision.Embedder.OutputDim
		}
		err = cal.CheckOutput(out)
	}
	if err != nil {
		return enroll.Calibration{}, fmt.Errorf("vision.embedder.calibration: %w", err)
	}
	return cal, nil
}

// calibration is the engine's measured rule and tails: the one
// resolveEngine loaded, or, for an engine switched since (eval --engine),
// that engine's.
func (c Config) calibration() enroll.Calibration {
	if c.Vision.cal != nil && c.Vision.calEngine == c.Vision.Engine {
		return *c.Vision.cal
	}
	cal, _ := c.loadCalibration() // resolveEngine reported any error at start
	return cal
}

// tails fills the open-set policy's tails for the engine.
func (c Config) tails(o *enroll.OpenSet) {
	cal := c.calibration()
	o.Tail, o.Track = cal.Tail, cal.TrackTail
}

// match returns the match rule with the engine's calibrated values filled
// in.
func (c Config) match() MatchConfig {
	c.resolveEngine()
	m, d := c.Match, c.calibration()
	if m.Threshold == 0 {
		m.Threshold = d.Threshold
	}
	if m.Margin == 0 {
		m.Margin = d.Margin
	}
	if m.FaceSlack == nil {
		m.FaceSlack = &d.FaceSlack
	}
	return m
}

// rule is the loosest rule the configuration allows: the configured
// threshold, or the engine's ceiling when it is calibrated. Enrollment
// checks (duplicates, one person per kiosk session) and the false-match
// step use it; recognition uses openSet's threshold for the gallery's size.
func (c Config) rule() enroll.Rule {
	m := c.match()
	return enroll.Rule{Threshold: m.Threshold, Margin: m.Margin, FaceSlack: *m.FaceSlack}
}

// openSet is the recognition threshold policy: calibrated to the gallery's
// size with the engine's tail when match.threshold is 0, fixed otherwise.
func (c Config) openSet() enroll.OpenSet {
	c.resolveEngine()
	o := enroll.OpenSet{Target: c.Match.FalseAlertTarget, Ceiling: c.rule().Threshold}
	if c.Match.Threshold == 0 {
		c.tails(&o)
		o.DoorFactor = c.doorFactor()
	}
	return o
}

// expectedFalseAlerts is the expected false alerts per stranger visit at
// the threshold in force for n customers, from the engine's measured tails
// (the larger of the single-face and track rates, margin not credited: an
// upper estimate).
func (c Config) expectedFalseAlerts(n int) float64 {
	c.resolveEngine()
	o := c.openSet()
	th := o.Threshold(n)
	// A fixed threshold has no tail of its own; the engine's still
	// tells what it costs.
	c.tails(&o)
	return o.Expected(th, n)
}

// duplicateThreshold is match.duplicate_threshold; 0 leaves it to the
// recognition threshold in force (enroll.Service.DuplicateThreshold).
func (c Config) duplicateThreshold() float64 { return c.Match.DuplicateThreshold }
