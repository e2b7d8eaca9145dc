package packing_test

import (
	"bytes"
	"image/png"
	"testing"
	"time"

	"github.com/expresshub/station/packing"
)

func labelBag() packing.Bag {
	sealed := time.Date(2026, 3, 14, 15, 9, 26, 0, time.UTC)
	return packing.Bag{ID: "BGSGH01M8K2Z1000042", StationID: station, NextHop: hop, Status: packing.BagSealed,
		ItemCount: 17, WeightG: 12_345, SealedBy: "op_1", SealedAt: &sealed}
}

func TestLabelZPLGolden(t *testing.T) {
	golden(t, "label.zpl.golden", packing.LabelZPL(labelBag()))
}

func TestLabelPNGIsAFullLabel(t *testing.T) {
	raw, err := packing.LabelPNG(labelBag())
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	if b := img.Bounds(); b.Dx() != 812 || b.Dy() != 1218 {
		t.Fatalf("label is %v, want 812x1218 (4x6 in at 203 dpi)", b)
	}
}

func TestLabelOnlyForSealedBags(t *testing.T) {
	e := newEnv(t)
	b := e.open(hop)
	_, err := e.svc.LabelBag(ctx(t), station, b.ID)
	wantErr(t, err, packing.ErrBagNotSealed)
	s := e.sealedBag(hop, 2)
	got, err := e.svc.LabelBag(ctx(t), station, s.ID)
	if err != nil || got.ItemCount != 2 {
		t.Fatalf("%+v %v", got, err)
	}
	if !bytes.Contains(packing.LabelZPL(got), []byte("^FD"+s.ID+"^FS")) {
		t.Fatal("label does not carry the bag id")
	}
}
