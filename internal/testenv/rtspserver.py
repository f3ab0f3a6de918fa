# A real RTSP server for tests (GStreamer's gst-rtsp-server through python3-gi):
# videotestsrc encoded as H.264 or MJPEG, served on 127.0.0.1 only.
#   rtspserver.py PORT CODEC WIDTH HEIGHT FPS
# Prints "ready" once it listens.
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

Gst.init(None)
port, codec = sys.argv[1], sys.argv[2]
w, h, fps = int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
src = f"videotestsrc is-live=true pattern=ball ! video/x-raw,format=I420,width={w},height={h},framerate={fps}/1"
enc = {
    # A key frame every second so a reconnecting client decodes at once.
    "h264": f"x264enc tune=zerolatency speed-preset=ultrafast key-int-max={fps} "
    "! rtph264pay name=pay0 pt=96 config-interval=1",
    "mjpeg": "jpegenc ! rtpjpegpay name=pay0 pt=26",
}[codec]
server = GstRtspServer.RTSPServer()
server.set_address("127.0.0.1")
server.set_service(port)
factory = GstRtspServer.RTSPMediaFactory()
factory.set_launch(f"( {src} ! {enc} )")
factory.set_shared(True)
server.get_mount_points().add_factory("/cam", factory)
if server.attach(None) == 0:
    sys.exit("rtspserver: cannot listen on 127.0.0.1:" + port)
print("ready", flush=True)
GLib.MainLoop().run()
