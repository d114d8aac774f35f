package checkin

import "concierge/enroll"

// HeldForTest counts what the service holds in memory: cameras, live
// tracks, embeddings (in any track) and cooldown entries, so tests can
// prove that a stranger leaves nothing behind.
func (s *Service) HeldForTest() (cameras, tracks, embeddings, cooldowns int) {
	s.mu.Lock()
	cams := make([]*camera, 0, len(s.cameras))
	for _, c := range s.cameras {
		cams = append(cams, c)
	}
	s.mu.Unlock()
	for _, c := range cams {
		c.mu.Lock()
		tracks += len(c.tracks)
		for _, t := range c.tracks {
			embeddings += len(t.samples)
		}
		c.mu.Unlock()
	}
	s.coolMu.Lock()
	cooldowns = len(s.until)
	s.coolMu.Unlock()
	return len(cams), tracks, embeddings, cooldowns
}

// HoldForTest holds faces as the service does after a decision.
func HoldForTest(h *HeldFaces, id, customer string, faces []enroll.DoorFace) {
	h.hold(id, customer, faces)
}
