package auth

import "context"

// SyncRevocations runs one revocation poll (tests drive it instead of waiting for the ticker).
func (s *Service) SyncRevocations(ctx context.Context) error { return s.revs.sync(ctx) }

// PollLive runs one poll of the live session events.
func (s *Service) PollLive(ctx context.Context) error { return s.live.poll(ctx) }

// LiveSize reports the sizes of the hub's maps: watched accounts, watched sessions, versions kept.
func (s *Service) LiveSize() (users, sessions, versions int) {
	s.live.mu.Lock()
	defer s.live.mu.Unlock()
	return len(s.live.byUser), len(s.live.bySession), len(s.live.versions)
}

// Receive hands the Service a message as its Broadcaster's subscription would.
func (s *Service) Receive(m Broadcast) { s.received(m) }
