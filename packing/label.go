package packing

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"strings"

	"github.com/boombuler/barcode"
	"github.com/boombuler/barcode/code128"
	xdraw "golang.org/x/image/draw"
	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"
)

// The label is 4 x 6 inches at 203 dpi, the common thermal shipping label.
const (
	labelWidth  = 812
	labelHeight = 1218
	labelMargin = 40
)

// LabelBag returns a sealed (or departed) bag of the station for its label;
// an open bag has no label yet (ErrBagNotSealed).
func (s *Service) LabelBag(ctx context.Context, stationID, bagID string) (Bag, error) {
	b, err := s.Bag(ctx, stationID, bagID)
	if err != nil {
		return Bag{}, err
	}
	if b.Status == BagOpen {
		return Bag{}, refuse(ErrBagNotSealed, map[string]any{"bag_id": b.ID}, "bag %s is still open; seal it to print its label", b.ID)
	}
	return b, nil
}

// labelLines are the human-readable lines under the barcode.
func labelLines(b Bag) []string {
	sealed := ""
	if b.SealedAt != nil {
		sealed = b.SealedAt.UTC().Format("2006-01-02 15:04 UTC")
	}
	return []string{
		fmt.Sprintf("Parcels: %d", b.ItemCount),
		"Weight: " + formatWeight(b.WeightG),
		"Sealed: " + sealed,
		"By: " + b.SealedBy,
	}
}

func formatWeight(g int) string { return fmt.Sprintf("%d.%03d kg", g/1000, g%1000) }

// LabelZPL renders the bag label for a ZPL II thermal printer: the bag id
// as a Code 128 barcode (^BC) with its interpretation line, the next hop in
// large type, the parcel count, the weight and the seal time.
func LabelZPL(b Bag) []byte {
	var w bytes.Buffer
	field := func(x, y, h int, text string) {
		fmt.Fprintf(&w, "^FO%d,%d^A0N,%d,%d^FH^FD%s^FS\n", x, y, h, h, zplEscape(text))
	}
	w.WriteString("^XA\n^CI28\n")
	fmt.Fprintf(&w, "^PW%d\n^LL%d\n^LH0,0\n", labelWidth, labelHeight)
	field(labelMargin, 40, 36, "EXPRESSHUB BAG  "+b.StationID+" >")
	field(labelMargin, 100, 160, b.NextHop)
	fmt.Fprintf(&w, "^FO%d,%d^BY2,3,200^BCN,200,Y,N,N^FH^FD%s^FS\n", labelMargin, 320, zplEscape(b.ID))
	for i, line := range labelLines(b) {
		field(labelMargin, 620+i*70, 50, line)
	}
	w.WriteString("^XZ\n")
	return w.Bytes()
}

// zplEscape hex-escapes the characters ZPL treats as commands inside field
// data (with ^FH the indicator is "_").
func zplEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch r {
		case '^', '~', '_':
			fmt.Fprintf(&b, "_%02X", r)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// LabelPNG renders a preview of the same label for the web UI, with the
// same barcode (scannable from a screen).
func LabelPNG(b Bag) ([]byte, error) {
	img := image.NewGray(image.Rect(0, 0, labelWidth, labelHeight))
	xdraw.Draw(img, img.Bounds(), image.White, image.Point{}, xdraw.Src)

	drawText(img, labelMargin, 40, 3, "EXPRESSHUB BAG  "+b.StationID+" >")
	drawText(img, labelMargin, 100, 11, b.NextHop)

	bc, err := code128.Encode(b.ID)
	if err != nil {
		return nil, fmt.Errorf("packing: barcode of %s: %w", b.ID, err)
	}
	module := max(1, min(3, (labelWidth-2*labelMargin)/bc.Bounds().Dx()))
	scaled, err := barcode.Scale(bc, bc.Bounds().Dx()*module, 200)
	if err != nil {
		return nil, fmt.Errorf("packing: scale barcode: %w", err)
	}
	at := image.Pt(labelMargin, 320)
	xdraw.Draw(img, scaled.Bounds().Add(at), scaled, scaled.Bounds().Min, xdraw.Src)
	drawText(img, labelMargin, 530, 3, b.ID)

	for i, line := range labelLines(b) {
		scale := 4
		if i >= 2 { // the seal time and operator are for the record, not the loaders
			scale = 3
		}
		drawText(img, labelMargin, 620+i*70, scale, line)
	}
	var out bytes.Buffer
	if err := png.Encode(&out, img); err != nil {
		return nil, fmt.Errorf("packing: encode png: %w", err)
	}
	return out.Bytes(), nil
}

// drawText draws one line in the fixed 7x13 font, scaled up by an integer
// factor with nearest-neighbour so it stays crisp like a thermal print.
func drawText(dst xdraw.Image, x, y, scale int, text string) {
	face := basicfont.Face7x13
	w := font.MeasureString(face, text).Ceil()
	small := image.NewGray(image.Rect(0, 0, max(w, 1), 13))
	xdraw.Draw(small, small.Bounds(), image.White, image.Point{}, xdraw.Src)
	d := font.Drawer{Dst: small, Src: image.NewUniform(color.Black), Face: face, Dot: fixed.P(0, 11)}
	d.DrawString(text)
	r := image.Rect(x, y, x+small.Bounds().Dx()*scale, y+13*scale).Intersect(dst.Bounds())
	xdraw.NearestNeighbor.Scale(dst, r, small, image.Rect(0, 0, r.Dx()/scale, r.Dy()/scale), xdraw.Src, nil)
}
