package model

import (
	"encoding/json"
	"errors"
	"io"
)

// JSON is the JSON scalar: a JSON value kept as its encoding, so that WebAuthn options and
// credentials pass between the browser and go-webauthn without a Go type of their own.
type JSON json.RawMessage

// UnmarshalGQL takes the value as gqlgen decoded it from the request and encodes it again. The size
// is bounded by the request body limit.
func (j *JSON) UnmarshalGQL(v any) error {
	if v == nil {
		*j = nil
		return nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return errors.New("not a JSON value")
	}
	*j = b
	return nil
}

// MarshalGQL writes the value as it is (null when empty).
func (j JSON) MarshalGQL(w io.Writer) {
	if len(j) == 0 {
		_, _ = io.WriteString(w, "null")
		return
	}
	_, _ = w.Write(j)
}
