// A guest's meeting page. Camera and microphone are checked first; "Vào họp" opens the control channel (the
// session cookie set by the invitation authenticates it) and speaks the rooms' protocol: the coordinator says
// join, the page offers the rooms' three m-lines (its camera and microphone, sent only when the coordinator
// asks; the program with the chair's sound, and the floor's sound, received), raises and lowers the hand,
// follows the floor. What goes wrong is said in Vietnamese, with what to do.
(function () {
  "use strict";
  var RETRY_MS = 5000;
  // Close codes of the channel: what to tell the guest, and whether to try again by itself.
  var CLOSED = {
    1008: ["Trang gửi quá nhiều yêu cầu tới máy chủ; đang thử lại…", true],
    1012: ["Máy chủ họp đang khởi động lại; đang nối lại…", true],
    4000: ["Lời mời này vừa được mở ở cửa sổ hoặc máy khác; cuộc họp tiếp tục ở đó.", false],
    4003: ["Người điều hành đã mời bạn ra khỏi cuộc họp (lời mời đã bị thu hồi).", false],
    4010: ["Cuộc họp đã kết thúc. Cảm ơn bạn đã tham dự.", false],
    4011: ["Cuộc họp chưa bắt đầu. Trang sẽ tự vào họp khi cuộc họp bắt đầu.", true],
    4401: ["Trình duyệt này không còn giữ lời mời; hãy mở lại đường dẫn mời hoặc nhập lại mã mời.", false],
    4403: ["Trang này không được phép mở kết nối họp.", false]
  };

  function deviceProblem(error) {
    var name = error && error.name;
    if (name === "NotAllowedError" || name === "SecurityError") {
      return "Bạn chưa cho phép trang dùng camera và micrô. Hãy bấm biểu tượng ổ khóa cạnh địa chỉ trang, chọn " +
        "“Cho phép”, rồi tải lại trang. Bạn vẫn có thể vào họp để xem và nghe.";
    }
    if (name === "NotFoundError" || name === "OverconstrainedError") {
      return "Không tìm thấy camera hoặc micrô trên máy này. Bạn vẫn có thể vào họp để xem và nghe.";
    }
    if (name === "NotReadableError") {
      return "Camera hoặc micrô đang được ứng dụng khác dùng. Hãy tắt ứng dụng đó rồi tải lại trang.";
    }
    return "Không mở được camera và micrô (" + (name || "lỗi không rõ") + "). Bạn vẫn có thể vào họp để xem và nghe.";
  }

  function setUp(section) {
    var program = document.getElementById("guest-program");
    var preview = document.getElementById("guest-self");
    var floorSound = document.getElementById("guest-floor");
    var meter = document.getElementById("guest-mic");
    var state = document.getElementById("guest-state");
    var joinButton = document.getElementById("guest-join");
    var handButton = document.getElementById("guest-hand");
    var leaveButton = document.getElementById("guest-leave");
    var camera = null; // the guest's own MediaStream
    var socket = null;
    var pc = null;
    var senders = {};
    var me = null;
    var hand = false;
    var leaving = false;
    var retry = null;

    function say(text, how) {
      state.textContent = text;
      state.classList.toggle("bad", how === "bad");
      state.classList.toggle("ok", how === "ok");
    }
    function send(message) {
      if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(message));
    }
    function track(kind) {
      if (!camera) return null;
      var tracks = kind === "video" ? camera.getVideoTracks() : camera.getAudioTracks();
      return tracks.length ? tracks[0] : null;
    }

    function listenToMicrophone() {
      if (!track("audio")) return;
      var context = new AudioContext();
      var analyser = context.createAnalyser();
      analyser.fftSize = 1024;
      context.createMediaStreamSource(camera).connect(analyser);
      var samples = new Float32Array(analyser.fftSize);
      setInterval(function () {
        analyser.getFloatTimeDomainData(samples);
        var peak = 0;
        for (var i = 0; i < samples.length; i++) peak = Math.max(peak, Math.abs(samples[i]));
        meter.value = peak;
      }, 200);
    }

    function checkDevices() {
      if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
        say("Trình duyệt chỉ cho dùng camera và micrô trên trang https://. Hãy mở đường dẫn mời bắt đầu bằng https://.", "bad");
        return Promise.resolve();
      }
      return navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 360 }, audio: true })
        .catch(function (error) {
          if (error.name !== "NotFoundError") throw error;
          return navigator.mediaDevices.getUserMedia({ audio: true }); // a laptop without a camera still talks
        })
        .then(function (stream) {
          camera = stream;
          preview.srcObject = stream;
          preview.play().catch(function () {});
          listenToMicrophone();
          if (section.getAttribute("data-standing") !== "waiting") {
            say(track("video") ? "Camera và micrô sẵn sàng. Bấm “Vào họp”." : "Micrô sẵn sàng (không có camera). Bấm “Vào họp”.");
          }
        })
        .catch(function (error) { say(deviceProblem(error), "bad"); });
    }

    function closePeer() {
      if (pc) pc.close();
      pc = null;
      senders = {};
    }

    function startPeer(occurrence) {
      closePeer();
      // A TURN server (over TLS) when the coordinator has one: the way through networks that block UDP.
      var current = new RTCPeerConnection({ iceServers: JSON.parse(section.getAttribute("data-ice") || "[]") });
      pc = current;
      var slots = [
        current.addTransceiver("video", { direction: "sendrecv" }),
        current.addTransceiver("audio", { direction: "sendrecv" }),
        current.addTransceiver("audio", { direction: "recvonly" })
      ];
      senders = { video: slots[0].sender, audio: slots[1].sender };
      program.srcObject = new MediaStream([slots[0].receiver.track, slots[1].receiver.track]);
      floorSound.srcObject = new MediaStream([slots[2].receiver.track]);
      program.play().catch(function () {});
      floorSound.play().catch(function () {});
      current.addEventListener("connectionstatechange", function () {
        if (pc !== current) return;
        if (current.connectionState === "connected") {
          say("Bạn đang dự họp. Bấm “Xin phát biểu” khi muốn nói.", "ok");
        } else if (current.connectionState === "failed") {
          say("Không truyền được hình và tiếng: mạng nơi bạn đang ở có thể chặn kết nối họp (UDP). " +
            "Hãy thử mạng khác, ví dụ 4G; trang đang thử lại.", "bad");
          reconnect();
        }
      });
      current.createOffer()
        .then(function (offer) { return current.setLocalDescription(offer); })
        .then(function () { return window.PhongHop.gathered(current); })
        .then(function () {
          if (pc === current) send({ type: "offer", occurrence: occurrence, sdp: current.localDescription.sdp });
        });
    }

    function setSending(video, audio) {
      if (senders.video) senders.video.replaceTrack(video ? track("video") : null);
      if (senders.audio) senders.audio.replaceTrack(audio ? track("audio") : null);
    }

    function setHand(raised) {
      hand = raised;
      handButton.textContent = raised ? "Hạ tay" : "✋ Xin phát biểu";
      section.setAttribute("data-hand", raised ? "1" : "0");
    }

    function onFloor(holder) {
      section.setAttribute("data-floor", holder === me ? "me" : holder || "");
      if (holder === me) {
        setHand(false);
        say("Bạn đang phát biểu: mọi phòng họp đang thấy và nghe bạn.", "ok");
      } else if (pc) {
        say("Bạn đang dự họp. Bấm “Xin phát biểu” khi muốn nói.", "ok");
      }
    }

    function handle(message) {
      if (message.type === "welcome") {
        me = message.room;
      } else if (message.type === "command") {
        send({ type: "ack", command_id: message.id, ok: true });
        if (message.action === "join") startPeer(message.meeting.occurrence);
        else if (message.action === "leave") closePeer();
      } else if (message.type === "answer" && pc) {
        pc.setRemoteDescription({ type: "answer", sdp: message.sdp }).catch(function (error) {
          say("Trình duyệt không nhận được trả lời của máy chủ (" + error.name + "). Hãy tải lại trang.", "bad");
        });
      } else if (message.type === "floor") {
        onFloor(message.room);
      } else if (message.type === "publish") {
        setSending(message.video, message.audio);
      } else if (message.type === "error") {
        var advice = message.code === "bad_offer"
          ? "Trình duyệt này kết nối theo cách máy chủ họp không dùng được; hãy dùng Chrome, Firefox hoặc Safari bản mới. "
          : "Máy chủ họp báo lỗi. ";
        say(advice + "(" + message.message + ")", "bad");
      }
    }

    function reconnect() {
      if (retry || leaving) return;
      retry = setTimeout(function () { retry = null; connect(); }, RETRY_MS);
    }

    function connect() {
      var scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
      if (socket) socket.close(1000);
      var ws = new WebSocket(scheme + window.location.host + section.getAttribute("data-channel"));
      socket = ws;
      ws.addEventListener("open", function () {
        send({ type: "hello", version: "trinh-duyet", devices: { camera: Boolean(track("video")), microphone: Boolean(track("audio")) } });
      });
      ws.addEventListener("message", function (event) {
        var message;
        try { message = JSON.parse(event.data); } catch (error) { return; }
        handle(message);
      });
      ws.addEventListener("close", function (event) {
        if (socket !== ws) return;
        socket = null;
        closePeer();
        setHand(false);
        if (leaving) return;
        var known = CLOSED[event.code];
        if (known && !known[1]) {
          say(known[0], "bad");
          handButton.hidden = leaveButton.hidden = true;
          return;
        }
        say(known ? known[0] : "Mất kết nối tới máy chủ họp; đang nối lại…", "bad");
        reconnect();
      });
    }

    joinButton.addEventListener("click", function () {
      leaving = false;
      joinButton.hidden = true;
      handButton.hidden = leaveButton.hidden = false;
      say("Đang vào họp…");
      connect();
    });
    handButton.addEventListener("click", function () {
      setHand(!hand);
      send({ type: "hand", raised: hand });
    });
    leaveButton.addEventListener("click", function () {
      leaving = true;
      if (retry) { clearTimeout(retry); retry = null; }
      if (socket) socket.close(1000);
      socket = null;
      closePeer();
      setHand(false);
      joinButton.hidden = false;
      handButton.hidden = leaveButton.hidden = true;
      say("Bạn đã rời cuộc họp. Bấm “Vào họp” để vào lại.");
    });
    checkDevices();
  }

  document.addEventListener("DOMContentLoaded", function () {
    var section = document.querySelector("[data-guest]");
    if (section) setUp(section);
  });
})();
