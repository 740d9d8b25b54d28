import { useEffect, useRef, useState } from 'preact/hooks';

interface WebcamProps {
  onCapture: (frame: Blob) => void;
  onError: (message: string) => void;
}

function cameraMessage(error: unknown): string {
  const name = error instanceof DOMException ? error.name : '';
  if (name === 'NotAllowedError')
    return 'The browser was not allowed to use the camera; allow it and try again';
  if (name === 'NotFoundError') return 'No camera was found on this device';
  if (!navigator.mediaDevices)
    return 'The camera needs a secure page: open ris at http://localhost or over https';
  return `The camera could not start (${name || String(error)})`;
}

/**
 * A live camera preview with a Capture button. The camera runs only while this is shown and the page is
 * visible: it stops when the component goes (the toggle is off) or the tab is hidden, and restarts when
 * the tab comes back.
 */
export function Webcam({ onCapture, onError }: WebcamProps) {
  const video = useRef<HTMLVideoElement>(null);
  const [ready, setReady] = useState(false);
  // The latest callback, read when the camera fails, so a new callback does not restart the camera.
  const reportError = useRef(onError);
  reportError.current = onError;

  useEffect(() => {
    let stream: MediaStream | null = null;
    let cancelled = false;
    const stop = () => {
      for (const track of stream?.getTracks() ?? []) track.stop();
      stream = null;
      if (video.current) video.current.srcObject = null;
      setReady(false);
    };
    const start = async () => {
      if (stream || document.hidden) return;
      try {
        const opened = await navigator.mediaDevices.getUserMedia({ video: { width: 1280, height: 720 } });
        if (cancelled || document.hidden) {
          for (const track of opened.getTracks()) track.stop();
          return;
        }
        stream = opened;
        if (video.current) video.current.srcObject = opened;
      } catch (error) {
        if (!cancelled) reportError.current(cameraMessage(error));
      }
    };
    const onVisibility = () => (document.hidden ? stop() : void start());
    document.addEventListener('visibilitychange', onVisibility);
    void start();
    return () => {
      cancelled = true;
      document.removeEventListener('visibilitychange', onVisibility);
      stop();
    };
  }, []);

  const capture = () => {
    const source = video.current;
    if (!source || source.videoWidth === 0) return;
    const canvas = document.createElement('canvas');
    canvas.width = source.videoWidth;
    canvas.height = source.videoHeight;
    canvas.getContext('2d')!.drawImage(source, 0, 0);
    canvas.toBlob((blob) => blob && onCapture(blob), 'image/jpeg', 0.92);
  };

  return (
    <div class="webcam">
      <video
        ref={video}
        class="webcam-video"
        aria-label="Live camera preview"
        autoplay
        muted
        playsInline
        onLoadedMetadata={() => setReady(true)}
      />
      <button type="button" class="primary" onClick={capture} disabled={!ready}>
        Capture
      </button>
    </div>
  );
}
