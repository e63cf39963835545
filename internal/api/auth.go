package api

import (
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"net/http"
	"regexp"
	"strings"
)

// Role is what a token may do.
type Role int

// Roles: read sees cascades; operate also uses the controls.
const (
	RoleRead Role = iota + 1
	RoleOperate
)

func (r Role) String() string {
	switch r {
	case RoleRead:
		return "read"
	case RoleOperate:
		return "operate"
	}
	return "none"
}

// Token is a bearer token of the API, with the name recorded beside the
// controls it is used for.
type Token struct {
	Name   string
	Secret string
	Role   Role
}

var tokenName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$`)

// ParseTokens reads the tokens of one role as operators give them:
// "name:secret", or a bare secret, which is named after its role and
// position (read-1, operate-2). A secret that holds a colon must be given
// a name. Secrets shorter than 16 characters are refused: these tokens
// steer production.
func ParseTokens(role Role, values []string) ([]Token, error) {
	var out []Token
	for i, v := range values {
		t := Token{Name: fmt.Sprintf("%s-%d", role, i+1), Secret: v, Role: role}
		if name, secret, ok := strings.Cut(v, ":"); ok && tokenName.MatchString(name) {
			t.Name, t.Secret = name, secret
		}
		if len(t.Secret) < 16 {
			return nil, fmt.Errorf("%s token %s is shorter than 16 characters", role, t.Name)
		}
		out = append(out, t)
	}
	return out, nil
}

// keyring holds the tokens by their SHA-256, compared in constant time.
type keyring struct {
	sums  [][sha256.Size]byte
	names []string
	roles []Role
}

func newKeyring(tokens []Token) (*keyring, error) {
	k := &keyring{}
	seen := map[string]bool{}
	secrets := map[[sha256.Size]byte]bool{}
	for _, t := range tokens {
		if t.Role != RoleRead && t.Role != RoleOperate {
			return nil, fmt.Errorf("token %s has no role", t.Name)
		}
		sum := sha256.Sum256([]byte(t.Secret))
		if seen[t.Name] || secrets[sum] {
			return nil, fmt.Errorf("API token %s is given twice (by name or secret)", t.Name)
		}
		seen[t.Name], secrets[sum] = true, true
		k.sums, k.names, k.roles = append(k.sums, sum), append(k.names, t.Name), append(k.roles, t.Role)
	}
	return k, nil
}

// who returns the name and role of the request's bearer token; role 0 when
// it carries none or an unknown one. Every token is compared, whichever
// matches, so the time taken says nothing about them.
func (k *keyring) who(r *http.Request) (string, Role) {
	h := r.Header.Get("Authorization")
	scheme, secret, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", 0
	}
	sum := sha256.Sum256([]byte(strings.TrimSpace(secret)))
	found := -1
	for i := range k.sums {
		if subtle.ConstantTimeCompare(sum[:], k.sums[i][:]) == 1 {
			found = i
		}
	}
	if found < 0 {
		return "", 0
	}
	return k.names[found], k.roles[found]
}
