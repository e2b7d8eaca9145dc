package httpapi

import (
	"math"
	"net/http"
	"strconv"
)

// parseIfMatch reads an If-Match header that names one version, as the
// ETag of a GET gave it: `"3"` (the quotes may be left out). Versions are
// stored as PostgreSQL integers, so anything beyond math.MaxInt32 cannot
// name a version; it is refused here as a client's mistake instead of
// failing in the database. Lists, weak tags, "*", signs and other junk are
// refused too: each write names exactly the version it read.
func parseIfMatch(header string, min int) (int, error) {
	s := header
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		s = s[1 : len(s)-1]
	}
	bad := Errorf(http.StatusBadRequest, "invalid_if_match", `If-Match must be the quoted version from GET, e.g. "3"`)
	if s == "" || len(s) > 10 {
		return 0, bad
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, bad
		}
	}
	v, err := strconv.ParseInt(s, 10, 32)
	if err != nil || v < int64(min) || v > math.MaxInt32 {
		return 0, bad
	}
	return int(v), nil
}
