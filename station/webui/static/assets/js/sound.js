// Beeps made with Web Audio: no sound files to fetch. An exception must be
// heard over a noisy hall, so it is two low square-wave tones; a good scan
// is one short high tick. The audio context starts on the first key press
// (browsers allow audio only after a user gesture).

let ctx = null;

function audio() {
  if (!ctx) {
    const AC = window.AudioContext || window.webkitAudioContext;
    if (!AC) return null;
    ctx = new AC();
  }
  if (ctx.state === 'suspended') ctx.resume().catch(() => {});
  return ctx;
}

function tone(ac, at, freq, dur, type, gain) {
  const o = ac.createOscillator();
  const g = ac.createGain();
  o.type = type;
  o.frequency.value = freq;
  g.gain.setValueAtTime(gain, at);
  g.gain.exponentialRampToValueAtTime(0.0001, at + dur);
  o.connect(g).connect(ac.destination);
  o.start(at);
  o.stop(at + dur + 0.02);
}

// beep plays 'ok', 'exception', 'error', 'repeat', 'departed' or 'queued'. It never throws: a
// terminal without audio still works.
export function beep(kind) {
  try {
    const ac = audio();
    if (!ac) return;
    const t = ac.currentTime + 0.01;
    switch (kind) {
      case 'ok':
        tone(ac, t, 1760, 0.07, 'sine', 0.25);
        break;
      case 'exception':
        tone(ac, t, 330, 0.22, 'square', 0.4);
        tone(ac, t + 0.3, 330, 0.22, 'square', 0.4);
        break;
      case 'repeat':
        // Two quick high ticks: seen before, nothing wrong.
        tone(ac, t, 1760, 0.05, 'sine', 0.25);
        tone(ac, t + 0.09, 1760, 0.05, 'sine', 0.25);
        break;
      case 'departed':
        // Falling triangle tones: it left already, receive it again.
        tone(ac, t, 880, 0.1, 'triangle', 0.3);
        tone(ac, t + 0.12, 660, 0.1, 'triangle', 0.3);
        tone(ac, t + 0.24, 440, 0.14, 'triangle', 0.3);
        break;
      case 'queued':
        tone(ac, t, 660, 0.12, 'triangle', 0.3);
        tone(ac, t + 0.16, 520, 0.12, 'triangle', 0.3);
        break;
      default:
        tone(ac, t, 220, 0.45, 'sawtooth', 0.35);
    }
    document.documentElement.dataset.lastBeep = kind; // for tests and screen readers' logs
  } catch {
    // no audio: the colours and words still say it
  }
}
