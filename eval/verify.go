package eval

import (
	"fmt"
	"io"
	"text/tabwriter"

	"concierge/checkin"
	"concierge/enroll"
)

// BandResult is the "please verify" band measured on simulated visits:
// what share of genuine visits is announced, what share gets a card
// instead (naming the right customer, or a wrong one), and how many
// stranger visits get a card or an alert, as check-in decides them
// (checkin.Service.card): a card only for a track the rule did not
// announce, whose fused embedding of every probe names one customer within
// the band, with the rule's margin, and no probe of which names another
// customer within the band.
type BandResult struct {
	Customers int     `json:"customers"` // the gallery size the thresholds are calibrated for
	Threshold float64 `json:"threshold"` // the alert threshold at that size
	Band      float64 `json:"band"`      // the band's outer edge at that size
	// Genuine visits.
	Announced Rate `json:"announced"`
	Carded    Rate `json:"carded"`         // a card naming the visitor
	WrongCard Rate `json:"wrong_card"`     // a card naming another customer
	Stranger  Rate `json:"stranger"`       // stranger visits announced
	StrangerC Rate `json:"stranger_cards"` // stranger visits carded
}

// EvaluateBand measures rule (the alert rule) with the band's outer edge
// band on every track, as check-in decides them.
func (tr *Trials) EvaluateBand(rule enroll.Rule, band float64, votes int) BandResult {
	res := BandResult{Threshold: rule.Threshold, Band: band}
	tracks := checkin.Rule{Match: rule, Votes: votes}
	var ann, card, wrong, str, strC counter
	for s, r := range tr.runs {
		for _, t := range r.tracks {
			c, ok := decide(r, t, tracks)
			cardFor := -1
			if !ok && band > rule.Threshold {
				cardFor = bandCard(r, t, tracks, band)
			}
			if t.owner >= 0 {
				ann.add(s, ok && c == t.owner)
				card.add(s, cardFor >= 0 && cardFor == t.owner)
				wrong.add(s, cardFor >= 0 && cardFor != t.owner)
			} else {
				str.add(s, ok)
				strC.add(s, cardFor >= 0)
			}
		}
	}
	res.Announced, res.Carded, res.WrongCard = ann.rate(), card.rate(), wrong.rate()
	res.Stranger, res.StrangerC = str.rate(), strC.rate()
	return res
}

// bandCard is the customer a finished, unannounced track is carded for,
// or -1, by check-in's own rule (checkin.Rule.Card).
func bandCard(r run, t track, rule checkin.Rule, band float64) int {
	faces := make([]enroll.Match, len(t.probes))
	for i, pi := range t.probes {
		faces[i] = r.probes[pi].match
	}
	f := t.fused[len(t.fused)-1]
	if rule.Card(band, faces, f.match, f.top >= 0, nil).Verdict != checkin.Arrives {
		return -1
	}
	return f.top
}

// BandReport measures the band at each gallery size, with the alert
// threshold and the band calibrated for that size by policy and target
// (enroll.OpenSet.Threshold and Band), on the simulated galleries: the
// way docs/accuracy.md reports recognition at sizes the photo sets do not
// reach.
func (tr *Trials) BandReport(rule enroll.Rule, votes int, policy enroll.OpenSet, target float64, sizes []int) []BandResult {
	var out []BandResult
	for _, n := range sizes {
		r := rule
		r.Threshold = min(rule.Threshold, policy.Threshold(n))
		res := tr.EvaluateBand(r, policy.Band(target, n), votes)
		res.Customers = n
		out = append(out, res)
	}
	return out
}

func printBand(w io.Writer, target float64, rows []BandResult) error {
	if _, err := fmt.Fprintf(w, "\nVerify band (match.verify_target %s), thresholds calibrated for each gallery size, measured on the simulated galleries:\n", sci(target)); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "  customers\tthreshold\tband\tgenuine announced\tgenuine carded\twrong-customer cards\tstranger alerts\tstranger cards\n")
	for _, b := range rows {
		fmt.Fprintf(tw, "  %d\t%.3f\t%.3f\t%s (%d/%d)\t%s (%d/%d)\t%d/%d\t%d/%d\t%s (%d/%d)\n", b.Customers, b.Threshold, b.Band,
			pct(b.Announced.Rate), b.Announced.Events, b.Announced.Trials, pct(b.Carded.Rate), b.Carded.Events, b.Carded.Trials,
			b.WrongCard.Events, b.WrongCard.Trials, b.Stranger.Events, b.Stranger.Trials,
			pct(b.StrangerC.Rate), b.StrangerC.Events, b.StrangerC.Trials)
	}
	return tw.Flush()
}
