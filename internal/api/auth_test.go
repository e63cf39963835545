package api

import (
	"net/http/httptest"
	"strings"
	"testing"
)

func TestParseTokens(t *testing.T) {
	got, err := ParseTokens(RoleOperate, []string{"alice:0123456789abcdef0", "0123456789abcdef-bare", "x:y:0123456789abcdef"})
	if err != nil {
		t.Fatal(err)
	}
	want := []Token{
		{Name: "alice", Secret: "0123456789abcdef0", Role: RoleOperate},
		{Name: "operate-2", Secret: "0123456789abcdef-bare", Role: RoleOperate},
		{Name: "x", Secret: "y:0123456789abcdef", Role: RoleOperate},
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("token %d: got %+v, want %+v", i, got[i], want[i])
		}
	}
	for value, name := range map[string]string{"tiny-secret": "read-1", "bob:tiny-secret": "bob"} {
		_, err := ParseTokens(RoleRead, []string{value})
		if err == nil || !strings.Contains(err.Error(), name) || strings.Contains(err.Error(), "tiny-secret") {
			t.Errorf("%q: got %v, want a refusal naming %s, not printing the secret", value, err, name)
		}
	}
	if _, err := newKeyring([]Token{{Name: "a", Secret: "s", Role: RoleRead}, {Name: "b", Secret: "s", Role: RoleOperate}}); err == nil {
		t.Error("one secret given twice was accepted")
	}
}

func TestKeyringWho(t *testing.T) {
	k, err := newKeyring([]Token{{Name: "viewer", Secret: "read-secret-0123456789", Role: RoleRead}, {Name: "alice", Secret: "operate-secret-0123456", Role: RoleOperate}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		header, name string
		role         Role
	}{
		{"Bearer read-secret-0123456789", "viewer", RoleRead},
		{"bearer operate-secret-0123456", "alice", RoleOperate},
		{"Bearer operate-secret-012345", "", 0},
		{"Basic operate-secret-0123456", "", 0},
		{"operate-secret-0123456", "", 0},
		{"", "", 0},
	} {
		r := httptest.NewRequest("GET", "/api/v1/cascades", nil)
		r.Header.Set("Authorization", tc.header)
		if name, role := k.who(r); name != tc.name || role != tc.role {
			t.Errorf("%q: got %s/%s, want %s/%s", tc.header, name, role, tc.name, tc.role)
		}
	}
}
