//go:build ignore

// wrkbodies writes N distinct signed run payloads, and a wrk script that
// posts them in turn, for docs/bench/ingest-wrk.sh. The requests are
// formatted once, when each wrk thread starts, so that the load generator
// spends as little as it can of the cores it shares with the daemon.

package main

import (
	"crypto/hmac"
	"crypto/sha512"
	"encoding/hex"
	"fmt"
	"os"
	"strconv"
	"time"
)

func main() {
	n, _ := strconv.Atoi(os.Args[1])
	f, _ := os.Create(os.Args[2])
	defer f.Close()
	data, _ := os.Create(os.Args[2] + ".data")
	defer data.Close()
	for i := 0; i < n; i++ {
		body := fmt.Sprintf(`{"payload_version":1,"notification_configuration_id":"nc-0000000000000000","run_url":null,"run_id":"run-%016d","run_message":null,"run_created_at":null,"run_created_by":null,"workspace_id":"ws-0000000000000001","workspace_name":"network","organization_name":"acme","notifications":[{"message":"Applied","trigger":"run:completed","run_status":"applied","run_updated_at":"%s","run_updated_by":null}]}`, i, time.Unix(int64(i), 0).UTC().Format(time.RFC3339))
		m := hmac.New(sha512.New, []byte("bench-token"))
		m.Write([]byte(body))
		fmt.Fprintf(data, "%s\t%s\n", hex.EncodeToString(m.Sum(nil)), body)
	}
	// wrk runs two threads: each takes every other payload, so no payload
	// is sent twice (a duplicate would be answered without being stored).
	fmt.Fprint(f, `local requests, sent = {}, 0
local thread_id = 0
function setup(thread) thread:set("tid", thread_id); thread_id = thread_id + 1 end
function init(args)
  local i = 0
  for line in io.lines("`+os.Args[2]+`.data") do
    if i % 2 == tid then
      local tab = line:find("\t", 1, true)
      requests[#requests + 1] = wrk.format("POST", "/webhooks/tfe", {["Content-Type"]="application/json", ["X-TFE-Notification-Signature"]=line:sub(1, tab - 1)}, line:sub(tab + 1))
    end
    i = i + 1
  end
end
request = function()
  sent = sent + 1
  if sent > #requests then error("more requests than distinct payloads: raise N") end
  return requests[sent]
end
`)
}
