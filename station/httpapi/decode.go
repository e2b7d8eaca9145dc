package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
)

// decodeJSON reads exactly one JSON object into dst, rejecting unknown
// fields, trailing data and bodies over the limit; a client that sends a
// field the server owns (station, operator, status) is told so rather than
// silently ignored.
func decodeJSON(r *http.Request, dst any) error {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return jsonError(err)
	}
	if err := dec.Decode(&struct{}{}); !errors.Is(err, io.EOF) {
		if err != nil {
			if jerr := jsonError(err); jerr.(*Error).Status == http.StatusRequestEntityTooLarge {
				return jerr
			}
		}
		return Errorf(http.StatusBadRequest, "invalid_json", "body must hold a single JSON object")
	}
	return nil
}

func jsonError(err error) error {
	var maxErr *http.MaxBytesError
	var syntaxErr *json.SyntaxError
	var typeErr *json.UnmarshalTypeError
	switch {
	case errors.As(err, &maxErr):
		return Errorf(http.StatusRequestEntityTooLarge, "body_too_large", fmt.Sprintf("body exceeds %d bytes", maxErr.Limit))
	case errors.Is(err, os.ErrDeadlineExceeded):
		// The connection's read deadline (http.read_timeout) passed while
		// the body was still trickling in: the client was too slow, the
		// body was not malformed.
		return Errorf(http.StatusRequestTimeout, "request_timeout", "the body did not arrive within the read timeout")
	case errors.Is(err, io.EOF):
		return Errorf(http.StatusBadRequest, "invalid_json", "body is empty")
	case errors.As(err, &syntaxErr), errors.Is(err, io.ErrUnexpectedEOF):
		return Errorf(http.StatusBadRequest, "invalid_json", "body is not valid JSON")
	case errors.As(err, &typeErr):
		return Errorf(http.StatusBadRequest, "invalid_json", fmt.Sprintf("field %q has the wrong type", typeErr.Field))
	// encoding/json has no typed error for unknown fields; its message is
	// the only signal, and it is documented and stable.
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return Errorf(http.StatusBadRequest, "invalid_json", "unknown field "+strings.TrimPrefix(err.Error(), "json: unknown field "))
	default:
		return Errorf(http.StatusBadRequest, "invalid_json", "body is not valid JSON")
	}
}
