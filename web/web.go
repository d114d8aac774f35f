// Package web holds the branch box's pages for people: the staff lobby page
// and the enrollment kiosk page, their embedded static assets (plain HTML,
// CSS and ES modules, no build step) and their HTTP handlers. The pages see
// only what their screen may show: the lobby reads the staff feeds of the
// alert stream and never the manager's.
package web
