// Package sim plays the six downstream services Station calls (order center,
// basic, finance, delivery, container, linehaul) on one gRPC server, for
// `station sim`, `station dev`, tests and benchmarks. It owns deterministic
// fixtures, a latency profile, fault injection and the SimAdminService that
// controls them at run time (grpcurl works: reflection is on).
//
// It must never be imported by production code paths other than the `sim`
// and `dev` commands, and it never talks to Postgres or Redis: everything it
// knows is derived from the seed and the ids it is asked about.
//
// # The network
//
// Seven markets (SG, MY, TH, ID, VN, PH, BR) with 3, 4, 4, 5, 4, 4 and 5 hubs;
// every hub has five last-mile sites, two first-mile sites and one partner
// carrier site: 261 sites. Ids are <market>-<kind letter><nn>: SG-H01 (hub),
// SG-L07 (last mile), SG-F03 (first mile), SG-T02 (third party). Last-mile
// sites are numbered across the market, five per hub: SG-L01..L05 hang off
// SG-H01, SG-L06..L10 off SG-H02, and so on; first-mile two per hub, partner
// one per hub. One site per market is inactive: its last last-mile site
// (SG-L15, MY-L20, TH-L20, ID-L25, VN-L20, PH-L20, BR-L25; see InactiveSite).
//
// Routes (GetRoute, V1): from a hub, the next hop is the destination itself
// when the destination hangs off this hub, else the destination's hub; from
// any other site, its parent hub. GetRouteV2 is the same table except that
// <M>-L05 is re-homed from <M>-H01 to <M>-H02 (RehomedV2), so lanes into or
// out of it differ: this is what a gray release of V2 shows as mismatches.
// Routes never cross markets (NotFound). Lanes forbid batteries, liquids and
// dangerous goods. Partner sites do not offer express; hubs, first-mile and
// inactive sites serve no receivers (CheckServiceArea).
//
// # Parcels
//
// Any well-formed tracking number (two letters of a known market, 10 to 18
// digits) resolves; its numeric part n fixes its fate: n % 100 picks the kind
// (the table is on Kind: about 60% normal, the rest unknown, cancelled,
// intercepted, unpaid, restricted, COD, blocked customer, bad address, no
// fiscal document in BR, ...), and routing leans on hub 1 of the market so
// about nine in ten SG parcels pass the demo station SG-H01; the Elsewhere
// kind never does. Tests never hard-code numbers: TrackingNo(market, kind, i),
// ViaStation(station, i) and WrongStation(station, i) generate them, and
// Fixtures.Parcel says what every service will answer.
//
// # Latency (the origin story)
//
// The default profile (ProfileDefault) makes the sorting flows reproduce the
// numbers that motivated the DAG engine:
//
//	GetWaybill                        10 ms + 0-4 ms
//	GetRoute, GetRouteV2               6 ms + 0-4 ms
//	the "check" calls                 64 ms + 0-8 ms each:
//	  GetSite, CheckServiceArea, GetLaneRestrictions, CheckBilling,
//	  CheckCODLimit, GetDeliveryStatus, ValidateAddress,
//	  GetCustomerStatus, GetFiscalDocument
//	every other method                 1 ms + 0-2 ms
//
// A full market's legacy sort calls them one after another: waybill, ten
// checks (GetSite twice: this station and the destination), route, about
// 700-800 ms. The DAG runs the checks side by side after the waybill: about
// 12 + 72 + 8 ms, under 100 ms. A lean market (waybill, route, cached site)
// needs 20-30 ms. ProfileZero answers at once, for throughput benchmarks.
// Sleeps end early when the caller cancels.
//
// # Faults and the admin service
//
// Per method: an error rate with a gRPC code (exact and repeatable: call k
// fails iff ceil(k*rate) > ceil((k-1)*rate)), a hang (the caller's deadline
// ends the call) and added latency; from Config.Faults at start or
// SimAdminService.SetFault at run time. Every call of a downstream method is
// counted per method, retries included (GetCallCounts). The order center
// records every tracking event it accepts, deduplicated by event id with a
// count of duplicates, readable per tracking number in arrival order
// (GetTrackingEvents). PushTrackingEvents wants a live token from IssueToken
// (TTL Config.TokenTTL, default 5 minutes) unless Config.SkipTokenCheck.
package sim
