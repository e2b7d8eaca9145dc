// The chute label: a Code 128 barcode naming station and chute, hung under
// the chute. The floor prints it; the terminal's BIND mode reads it.

const LABEL = /^CHUTE:([A-Z0-9-]{2,32}):([1-9][0-9]{0,3})$/;

export function chuteLabel(station, chute) {
  return `CHUTE:${station}:${chute}`;
}

// parseChuteLabel returns {station, chute}, or null for any other code.
export function parseChuteLabel(code) {
  const m = LABEL.exec(code);
  return m ? {station: m[1], chute: Number(m[2])} : null;
}
