package kiosk

import (
	"net/http"
	"sort"
	"strings"
)

// route is one operation of the API.
type route struct {
	method, path string
	handle       func(s *Server, w http.ResponseWriter, r *http.Request) *apiError
}

// routeTable is the whole API; docs/kiosk.openapi.yaml describes exactly
// these operations (a test holds them in step).
var routeTable = []route{
	{"GET", "/v1/consent-text", (*Server).handleConsentText},
	{"POST", "/v1/enrollments", (*Server).handleStart},
	{"GET", "/v1/enrollments/{id}", (*Server).handleGetSession},
	{"DELETE", "/v1/enrollments/{id}", (*Server).handleAbort},
	{"POST", "/v1/enrollments/{id}/consent", (*Server).handleConsent},
	{"POST", "/v1/enrollments/{id}/guidance", (*Server).handleGuidance},
	{"POST", "/v1/enrollments/{id}/photos", (*Server).handlePhoto},
	{"POST", "/v1/enrollments/{id}/liveness/challenge", (*Server).handleEnrollChallenge},
	{"POST", "/v1/enrollments/{id}/liveness", (*Server).handleLiveness},
	{"POST", "/v1/enrollments/{id}/finish", (*Server).handleFinish},
	{"POST", "/v1/customers/{id}/challenge", (*Server).handlePresenceChallenge},
	{"POST", "/v1/customers/{id}/access", (*Server).handleAccess},
	{"GET", "/v1/customers/{id}/consent", (*Server).handleConsentStatus},
	{"POST", "/v1/customers/{id}/withdraw", (*Server).handleWithdraw},
}

// Routes lists the API's operations as "METHOD /path" patterns.
func Routes() []string {
	out := make([]string, len(routeTable))
	for i, rt := range routeTable {
		out[i] = rt.method + " " + rt.path
	}
	return out
}

// routes builds the mux: the operations, a JSON 405 for a known path with
// another method, and 403 for anything else under /v1/, which the kiosk
// role may not use (listing customers, reading alerts).
func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	methods := map[string][]string{}
	for _, rt := range routeTable {
		rt := rt
		mux.HandleFunc(rt.method+" "+rt.path, func(w http.ResponseWriter, r *http.Request) {
			if e := rt.handle(s, w, r); e != nil {
				if e.Status >= 500 {
					s.log.Error("kiosk request failed", "method", r.Method, "path", rt.path, "kiosk", kioskID(r), "err", e.Message)
				}
				writeError(w, e)
			}
		})
		methods[rt.path] = append(methods[rt.path], rt.method)
	}
	for path, ms := range methods {
		sort.Strings(ms)
		allow := strings.Join(ms, ", ")
		mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Allow", allow)
			writeError(w, errorf(http.StatusMethodNotAllowed, codeMethod, "%s %s: allowed methods are %s", r.Method, r.URL.Path, allow))
		})
	}
	mux.HandleFunc("/v1/", func(w http.ResponseWriter, r *http.Request) {
		s.record(r.Context(), AuditEntry{Actor: kioskID(r), Action: "access", Outcome: "refused", Detail: r.Method + " " + r.URL.Path})
		writeError(w, errorf(http.StatusForbidden, codeForbidden,
			"%s %s: the kiosk role may only enroll customers, withdraw consent and read a customer's consent status", r.Method, r.URL.Path))
	})
	return s.guard(mux)
}
