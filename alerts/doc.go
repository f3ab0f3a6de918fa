// Package alerts tells the PLC/SCADA layer about inspections over MQTT
// (paho, MQTT 3.1.1), without losing events when the broker or the network
// is away.
//
// # Topics
//
// Under <prefix>/<camera>/ (prefix default "inspectd"):
//
//	availability      "online" / "offline", retained, QoS 1; "offline" is
//	                  also the Last Will, so a crash or power loss shows too
//	event             Event JSON (schema "inspectd.event/v2"), QoS 1, not retained
//	heatmap/<id>      the event's heatmap as raw JPEG bytes, QoS 1, not retained;
//	                  the event's heatmap_topic, heatmap_bytes and heatmap_sha256
//	                  name and check it
//	status            Status JSON (schema "inspectd.status/v1"), retained,
//	                  at most one per StatusInterval
//	trigger           subscribed: payload = part id (may be empty), delivered on
//	                  Publisher.Trigger(); retained triggers are ignored
//	feedback          subscribed: operator verdict JSON {"event_id"|"part_id": "...",
//	                  "label": "good"|"defect"} (at most 1 KiB), delivered
//	                  parsed on Publisher.Feedback(), refused ones with Err
//
// The client id is stable per camera ("inspectd-<camera>") and the session is
// clean: triggers sent while the camera was offline are not replayed.
//
// # Delivery: at least once, in order
//
// Publish writes the event and its heatmap to the spool and returns once it
// is durable; a single sender goroutine then publishes entries oldest first,
// each one as the heatmap (when present) followed by its event, and deletes
// the entry only after the broker acknowledged both (PUBACK). Up to 16
// entries are in flight at once. When the connection drops, everything not
// yet acknowledged is sent again, oldest first, on the next connection, so a
// subscriber may see an event (or heatmap) twice and must drop duplicates by
// event id; the first copies arrive in spool order, each heatmap before its
// event. Pair heatmaps with events by the id in the heatmap topic, not by
// adjacency: a redelivered duplicate can sit between them.
//
// Every connection uses a fresh paho client and paho's auto-reconnect is off:
// paho's own reconnect completes the tokens of re-sent messages without a
// PUBACK, which would let unacknowledged entries be deleted.
//
// # Spool
//
// SpoolDir holds one file per entry, <sequence>.entry, written to a temporary
// file, fsynced, renamed and the directory fsynced, so an entry is either
// complete or absent after a crash. Each file carries a magic, lengths and a
// CRC-32C; an entry that fails these checks is moved to SpoolDir/corrupt/
// with an error log and counted (Stats.Corrupt), and sending goes on. A lock
// file stops two processes from sharing a spool.
//
// The spool is bounded by SpoolMaxEntries and SpoolMaxBytes (defaults 100000
// and 256 MiB). When a new event would exceed a bound, the OLDEST entries are
// deleted to make room, with a warning in the log (at most one every 10 s)
// and the Dropped counter (also in the status message as events_dropped).
// A line keeps inspecting while the SCADA link is down, and once it is back
// the recent parts are the ones that matter: refusing new events would stall
// or blind the line instead.
package alerts
