package reliability

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	stationv1 "github.com/expresshub/station/proto/station/v1"
)

// fleetDriver spreads a mixed load over the station instances the way a
// hub's terminals and sorting machine would, and books every answer it got.
// A write that gets no answer, a 5xx or a 429 is sent again, same body and
// same scan id, to the next instance: that is what the idempotency promise
// is for. A 4xx is a business answer and is never retried.
type fleetDriver struct {
	http    []*client
	sorters []stationv1.SorterServiceClient
	ledger  *fleetLedger

	next      atomic.Uint64 // round robin over the instances
	requests  atomic.Int64  // HTTP requests and gRPC calls sent, retries included
	resent    atomic.Int64  // of which sent again after no answer or a 5xx
	exhausted atomic.Int64  // of which gRPC ResourceExhausted or HTTP 429
	// Sorter calls refused as Unauthenticated although the key is valid:
	// the station answers so when it cannot reach its database to check
	// the key. Counted, sent again, and a failure of the test.
	falseUnauthenticated atomic.Int64
}

// maxAttempts bounds the attempts of one write; at a few per second while
// an instance restarts it is never reached unless the fleet stays down.
const maxAttempts = 600

func (d *fleetDriver) pick() int { return int(d.next.Add(1) % uint64(len(d.http))) }

// pause backs off a little more after each failed attempt.
func pause(ctx context.Context, attempt int) {
	select {
	case <-ctx.Done():
	case <-time.After(time.Duration(min(attempt+1, 10)) * 25 * time.Millisecond):
	}
}

// write sends one idempotent HTTP write until an instance answers it.
func (d *fleetDriver) write(ctx context.Context, method, path, token string, body any) (a answer, retried bool, err error) {
	i := d.pick()
	for attempt := range maxAttempts {
		d.requests.Add(1)
		a, err = d.http[(i+attempt)%len(d.http)].send(ctx, method, path, token, body)
		if err == nil && a.Status < 500 && a.Status != http.StatusTooManyRequests {
			return a, attempt > 0, nil
		}
		if err == nil && a.Status == http.StatusTooManyRequests {
			d.exhausted.Add(1)
		}
		d.resent.Add(1)
		if ctx.Err() != nil {
			break
		}
		pause(ctx, attempt)
	}
	if err == nil {
		err = fmt.Errorf("last answer %d: %s", a.Status, a.Body)
	}
	return a, true, fmt.Errorf("%s %s: gave up: %w", method, path, err)
}

// retryable says a sorter call may be sent again to another instance: it
// got no answer, the instance was going away or over its limit.
func retryable(err error) bool {
	switch status.Code(err) {
	case codes.Unavailable, codes.DeadlineExceeded, codes.ResourceExhausted, codes.Aborted, codes.Internal, codes.Unknown, codes.Canceled:
		return true
	}
	return false
}

// rpc makes one sorter call until an instance answers it.
func (d *fleetDriver) rpc(ctx context.Context, call func(context.Context, stationv1.SorterServiceClient) error) (retried bool, err error) {
	i := d.pick()
	for attempt := range maxAttempts {
		d.requests.Add(1)
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err = call(cctx, d.sorters[(i+attempt)%len(d.sorters)])
		cancel()
		if status.Code(err) == codes.Unauthenticated {
			d.falseUnauthenticated.Add(1)
		} else if err == nil || !retryable(err) || ctx.Err() != nil {
			return attempt > 0, err
		}
		if status.Code(err) == codes.ResourceExhausted {
			d.exhausted.Add(1)
		}
		d.resent.Add(1)
		pause(ctx, attempt)
	}
	return true, fmt.Errorf("sorter call: gave up: %w", err)
}

// opAck is one acknowledged write: what its terminal or sorter was told.
type opAck struct {
	kind        string // the work order type it must have: receive, sort, bag_add, ...
	scanID      string
	workOrderID string
	trackingNo  string
	retried     bool
	replayed    bool
}

// bagBook is what the driver was told about one bag.
type bagBook struct {
	hop    string
	items  map[string]bool
	sealed bool
}

// handoverBook is what the driver was told about one handover.
type handoverBook struct {
	bags   []string
	closed bool
}

// fleetLedger books every acknowledged write, to compare with PostgreSQL
// and the order center at the end.
type fleetLedger struct {
	mu          sync.Mutex
	acks        []opAck
	bags        map[string]*bagBook
	handovers   map[string]*handoverBook
	exceptions  int // scans answered with a business exception
	races       int // races of one parcel into two bags, each lost by one add
	lastRefusal string
}

func newFleetLedger() *fleetLedger {
	return &fleetLedger{bags: map[string]*bagBook{}, handovers: map[string]*handoverBook{}}
}

func (l *fleetLedger) book(a opAck, change func()) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.acks = append(l.acks, a)
	if change != nil {
		change()
	}
}

// workOrderAnswer is the part of every write's answer the ledger needs.
type workOrderAnswer struct {
	WorkOrderID string           `json:"work_order_id"`
	NextHop     *string          `json:"next_hop"`
	Exception   *json.RawMessage `json:"exception"`
	BagID       string           `json:"bag_id"`
	HandoverID  string           `json:"handover_id"`
}

// terminal is one operator's scanner: it takes parcels through receive,
// sort, bagging, sealing and handover, one after another.
type terminal struct {
	d     *fleetDriver
	name  string
	token string
	seq   int

	rival  map[string]string // next hop -> the open bag parcels are raced into
	sealed []string          // sealed bags waiting for a handover
}

func (tm *terminal) scanID(kind string) string {
	tm.seq++
	return tm.name + "-" + kind + "-" + strconv.Itoa(tm.seq)
}

// do sends a write that must be answered want and books it as kind, about
// parcel tn (empty for a bag or handover as a whole).
func (tm *terminal) do(ctx context.Context, kind, tn, method, path string, body map[string]any, want int, change func(workOrderAnswer)) (workOrderAnswer, error) {
	w, ok, err := tm.try(ctx, kind, tn, method, path, body, want, change)
	if err == nil && !ok {
		err = fmt.Errorf("%s %s (scan %v): refused", method, path, body["scan_id"])
	}
	return w, err
}

// try is do for a write the station may refuse: ok is false for a 4xx
// business answer, which writes nothing and is not booked.
func (tm *terminal) try(ctx context.Context, kind, tn, method, path string, body map[string]any, want int, change func(workOrderAnswer)) (w workOrderAnswer, ok bool, err error) {
	scanID, _ := body["scan_id"].(string)
	a, retried, err := tm.d.write(ctx, method, path, tm.token, body)
	switch {
	case err != nil:
		return w, false, err
	case a.Status >= 400 && a.Status < 500 && want < 400:
		tm.d.ledger.mu.Lock()
		tm.d.ledger.lastRefusal = string(a.Body)
		tm.d.ledger.mu.Unlock()
		return w, false, nil
	case a.Status != want:
		return w, false, fmt.Errorf("%s %s (scan %s): status %d, want %d: %s", method, path, scanID, a.Status, want, a.Body)
	}
	if err := json.Unmarshal(a.Body, &w); err != nil || w.WorkOrderID == "" {
		return w, false, fmt.Errorf("%s %s (scan %s): answer without a work order: %s", method, path, scanID, a.Body)
	}
	ack := opAck{kind: kind, scanID: scanID, workOrderID: w.WorkOrderID, trackingNo: tn,
		retried: retried, replayed: a.Header.Get("Idempotent-Replayed") == "true"}
	tm.d.ledger.book(ack, func() {
		if change != nil {
			change(w)
		}
	})
	return w, true, nil
}

// batch takes parcels through the whole hub: receive and sort each, a bag
// per next hop (one parcel taken out again now and then), seal, and a
// handover once three bags are sealed.
func (tm *terminal) batch(ctx context.Context, tns []string) error {
	l := tm.d.ledger
	byHop := map[string][]string{}
	var hops []string
	for _, tn := range tns {
		if _, err := tm.do(ctx, "receive", tn, "POST", "/api/v1/receive", map[string]any{"tracking_no": tn, "scan_id": "rcv-" + tn}, http.StatusOK,
			func(w workOrderAnswer) {
				if w.Exception != nil && string(*w.Exception) != "null" {
					l.exceptions++
				}
			}); err != nil {
			return err
		}
		w, err := tm.do(ctx, "sort", tn, "POST", "/api/v1/sort", map[string]any{"tracking_no": tn, "scan_id": "srt-" + tn}, http.StatusOK,
			func(w workOrderAnswer) {
				if w.Exception != nil && string(*w.Exception) != "null" {
					l.exceptions++
				}
			})
		if err != nil {
			return err
		}
		// A parcel sorted to the exception chute (a downstream fault) is
		// handled by people, not bagged.
		if w.NextHop == nil || (w.Exception != nil && string(*w.Exception) != "null") {
			continue
		}
		if _, ok := byHop[*w.NextHop]; !ok {
			hops = append(hops, *w.NextHop)
		}
		byHop[*w.NextHop] = append(byHop[*w.NextHop], tn)
	}
	for _, hop := range hops {
		if err := tm.bag(ctx, hop, byHop[hop]); err != nil {
			return err
		}
	}
	if len(tm.sealed) >= 3 {
		return tm.handover(ctx)
	}
	return nil
}

// openBag opens a bag for hop and books it.
func (tm *terminal) openBag(ctx context.Context, hop string) (string, error) {
	l := tm.d.ledger
	w, err := tm.do(ctx, "bag_open", "", "POST", "/api/v1/bags", map[string]any{"next_hop": hop, "scan_id": tm.scanID("open")}, http.StatusCreated,
		func(w workOrderAnswer) { l.bags[w.BagID] = &bagBook{hop: hop, items: map[string]bool{}} })
	return w.BagID, err
}

// addItem puts tn into a bag; ok is false when the station refused it.
func (tm *terminal) addItem(ctx context.Context, bagID, tn, scanID string) (ok bool, err error) {
	l := tm.d.ledger
	_, ok, err = tm.try(ctx, "bag_add", tn, "POST", "/api/v1/bags/"+bagID+"/items", map[string]any{"tracking_no": tn, "scan_id": scanID}, http.StatusOK,
		func(workOrderAnswer) { l.bags[bagID].items[tn] = true })
	return ok, err
}

// bag opens a bag for hop and adds the parcels, the first one raced into
// a second bag of the same hop at the same moment (exactly one add may
// win); it takes the last parcel out again now and then, and seals.
func (tm *terminal) bag(ctx context.Context, hop string, tns []string) error {
	l := tm.d.ledger
	if tm.rival[hop] == "" {
		// The rival bag stays open: it only ever holds parcels that won a race.
		id, err := tm.openBag(ctx, hop)
		if err != nil {
			return err
		}
		tm.rival[hop] = id
	}
	bagID, err := tm.openBag(ctx, hop)
	if err != nil {
		return err
	}
	var (
		race   sync.WaitGroup
		won    [2]bool
		errs   [2]error
		first  = tns[0]
		rivals = [2]string{bagID, tm.rival[hop]}
	)
	for i, b := range rivals {
		scanID := tm.scanID("add")
		race.Go(func() { won[i], errs[i] = tm.addItem(ctx, b, first, scanID) })
	}
	race.Wait()
	if err := errors.Join(errs[:]...); err != nil {
		return err
	}
	if won[0] == won[1] {
		return fmt.Errorf("parcel %s raced into bags %v: accepted %v; want exactly one", first, rivals, won)
	}
	l.mu.Lock()
	l.races++
	l.mu.Unlock()
	var kept []string
	if won[0] {
		kept = append(kept, first)
	}
	for _, tn := range tns[1:] {
		ok, err := tm.addItem(ctx, bagID, tn, tm.scanID("add"))
		if err != nil {
			return err
		}
		if !ok {
			l.mu.Lock()
			defer l.mu.Unlock()
			return fmt.Errorf("adding %s to bag %s refused: %s", tn, bagID, l.lastRefusal)
		}
		kept = append(kept, tn)
	}
	if len(kept) == 0 {
		return nil // the rival holds the only parcel; this bag stays open, empty
	}
	if len(kept) >= 2 && tm.seq%3 == 0 {
		out := kept[len(kept)-1]
		kept = kept[:len(kept)-1]
		if _, err := tm.do(ctx, "bag_remove", out, "DELETE", "/api/v1/bags/"+bagID+"/items/"+out, map[string]any{"scan_id": tm.scanID("remove")}, http.StatusOK,
			func(workOrderAnswer) { delete(l.bags[bagID].items, out) }); err != nil {
			return err
		}
	}
	if _, err := tm.do(ctx, "bag_seal", "", "POST", "/api/v1/bags/"+bagID+"/seal", map[string]any{"weight_g": 500 + 250*len(kept), "scan_id": tm.scanID("seal")}, http.StatusOK,
		func(workOrderAnswer) { l.bags[bagID].sealed = true }); err != nil {
		return err
	}
	tm.sealed = append(tm.sealed, bagID)
	return nil
}

// handover loads the terminal's sealed bags onto a last-mile rider.
func (tm *terminal) handover(ctx context.Context) error {
	l := tm.d.ledger
	w, err := tm.do(ctx, "handover_open", "", "POST", "/api/v1/handovers", map[string]any{"type": "lastmile", "rider_id": "R-" + tm.name, "scan_id": tm.scanID("ho")}, http.StatusCreated,
		func(w workOrderAnswer) { l.handovers[w.HandoverID] = &handoverBook{} })
	if err != nil {
		return err
	}
	id := w.HandoverID
	for _, bagID := range tm.sealed {
		if _, err := tm.do(ctx, "handover_add", "", "POST", "/api/v1/handovers/"+id+"/bags", map[string]any{"bag_id": bagID, "scan_id": tm.scanID("hb")}, http.StatusOK,
			func(workOrderAnswer) { l.handovers[id].bags = append(l.handovers[id].bags, bagID) }); err != nil {
			return err
		}
	}
	if _, err := tm.do(ctx, "handover_close", "", "POST", "/api/v1/handovers/"+id+"/close", map[string]any{"scan_id": tm.scanID("hc")}, http.StatusOK,
		func(workOrderAnswer) { l.handovers[id].closed = true }); err != nil {
		return err
	}
	tm.sealed = nil
	return nil
}

// sorterMachine is the station's cross-belt sorter: it pre-sorts a batch,
// resolves each parcel at the belt and confirms where it went, with one
// chute reported full and cleared again per batch.
type sorterMachine struct {
	d   *fleetDriver
	id  string
	seq uint64
}

func (sm *sorterMachine) confirm(ctx context.Context, outcome stationv1.ConfirmOutcome, tn string, chute int32) error {
	sm.seq++
	req := &stationv1.ConfirmRequest{Sequence: sm.seq, Outcome: outcome, TrackingNo: tn, Chute: chute}
	var resp *stationv1.ConfirmResponse
	retried, err := sm.d.rpc(ctx, func(ctx context.Context, c stationv1.SorterServiceClient) error {
		var err error
		resp, err = c.Confirm(ctx, req)
		return err
	})
	if err != nil {
		return fmt.Errorf("confirm %d (%s %s): %w", sm.seq, outcome, tn, err)
	}
	sm.d.ledger.book(opAck{kind: "sorter_confirm", scanID: "sorter:" + sm.id + ":" + strconv.FormatUint(sm.seq, 10),
		workOrderID: resp.GetWorkOrderId(), trackingNo: tn, retried: retried, replayed: resp.GetReplayed()}, nil)
	return nil
}

func (sm *sorterMachine) batch(ctx context.Context, tns []string) error {
	if _, err := sm.d.rpc(ctx, func(ctx context.Context, c stationv1.SorterServiceClient) error {
		_, err := c.PreSort(ctx, &stationv1.PreSortRequest{TrackingNos: tns})
		return err
	}); err != nil {
		return fmt.Errorf("presort: %w", err)
	}
	var fullChute int32
	for _, tn := range tns {
		var d *stationv1.Decision
		if _, err := sm.d.rpc(ctx, func(ctx context.Context, c stationv1.SorterServiceClient) error {
			r, err := c.Resolve(ctx, &stationv1.ResolveRequest{TrackingNo: tn})
			d = r.GetDecision()
			return err
		}); err != nil {
			return fmt.Errorf("resolve %s: %w", tn, err)
		}
		if d.GetChuteKind() == stationv1.ChuteKind_CHUTE_KIND_NEXT_HOP && fullChute == 0 {
			fullChute = d.GetChute()
		}
		if err := sm.confirm(ctx, stationv1.ConfirmOutcome_CONFIRM_OUTCOME_SORTED, tn, d.GetChute()); err != nil {
			return err
		}
	}
	if fullChute != 0 {
		if err := sm.confirm(ctx, stationv1.ConfirmOutcome_CONFIRM_OUTCOME_CHUTE_FULL, "", fullChute); err != nil {
			return err
		}
		return sm.confirm(ctx, stationv1.ConfirmOutcome_CONFIRM_OUTCOME_CHUTE_CLEARED, "", fullChute)
	}
	return nil
}

// sorterCreds sends the sorter's key with every call.
type sorterCreds string

func (k sorterCreds) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"x-sorter-key": string(k)}, nil
}

func (sorterCreds) RequireTransportSecurity() bool { return false }

// runLoad feeds parcel batches to the terminals and the sorter until stop
// closes; each finishes the batch in hand. It returns the first error.
func runLoad(ctx context.Context, stop <-chan struct{}, batches <-chan []string, terminals []*terminal, sorter *sorterMachine) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var wg sync.WaitGroup
	worker := func(run func(context.Context, []string) error) {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				case <-ctx.Done():
					return
				default:
				}
				select {
				case <-stop:
					return
				case <-ctx.Done():
					return
				case tns, ok := <-batches:
					if !ok {
						cancel(errors.New("ran out of parcels before the load time was over"))
						return
					}
					if err := run(ctx, tns); err != nil {
						cancel(err)
						return
					}
				}
			}
		})
	}
	for _, tm := range terminals {
		worker(tm.batch)
	}
	worker(sorter.batch)
	wg.Wait()
	return context.Cause(ctx)
}
