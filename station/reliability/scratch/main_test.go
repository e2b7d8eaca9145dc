package scratch
import ("testing";"github.com/expresshub/station/clients/sim")
func TestX(t *testing.T){ fx:=sim.NewFixtures(sim.DefaultSeed); n:=0; for i:=0;i<3000;i++{ if fx.ViaStation("SG-H01",i)==""{break}; n++}; t.Log("via",n, fx.NextHops("SG-H01")) }
