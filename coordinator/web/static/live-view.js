// The console's live view: the program picture with the chair's and the floor's sound, received by this
// page itself over WebRTC (receive-only; the offer goes to the coordinator with the page's CSRF token,
// the answer comes back), so the operator sees and hears what the rooms do. Muted until asked. Every
// console action reloads the page: the view starts again by itself, sound as it was left.
(function () {
  "use strict";

  function Refusal(message, retryAfter) {
    this.message = message;
    this.retryAfter = retryAfter;
  }

  function answerOf(response) {
    return response.json()
      .catch(function () { return { message: "Phiên làm việc đã hết hạn; hãy tải lại trang." }; })
      .then(function (data) {
        if (!response.ok || !data.sdp) {
          throw new Refusal(data.message || "Máy chủ không trả lời được.", data.retry_after);
        }
        return data.sdp;
      });
  }

  function setUp(section) {
    var video = section.querySelector("video");
    var floor = section.querySelector("audio");
    var state = section.querySelector(".live-state");
    var soundButton = section.querySelector(".live-sound");
    var remembered = "phonghop-live:" + section.getAttribute("data-offer"); // "muted" or "sound" while on
    var pc = null;

    function say(text, bad) {
      state.textContent = text;
      state.classList.toggle("bad", Boolean(bad));
    }
    function play() {
      video.play().catch(function () { setMuted(true); video.play().catch(function () {}); });
      floor.play().catch(function () {});
    }
    function setMuted(muted) {
      video.muted = muted;
      floor.muted = muted;
      soundButton.textContent = muted ? "Bật tiếng" : "Tắt tiếng";
      if (pc) sessionStorage.setItem(remembered, muted ? "muted" : "sound");
    }

    function start(muted) {
      if (pc) pc.close();
      var current = new RTCPeerConnection();
      pc = current;
      var slots = ["video", "audio", "audio"].map(function (kind) {
        return current.addTransceiver(kind, { direction: "recvonly" });
      });
      video.srcObject = new MediaStream([slots[0].receiver.track, slots[1].receiver.track]);
      floor.srcObject = new MediaStream([slots[2].receiver.track]);
      setMuted(muted);
      say("Đang kết nối…");
      current.addEventListener("connectionstatechange", function () {
        if (pc === current && current.connectionState === "failed") {
          say("Mất kết nối hình và tiếng; bấm “Xem trực tiếp” để nối lại.", true);
        }
      });
      current.createOffer()
        .then(function (offer) { return current.setLocalDescription(offer); })
        .then(function () { return window.PhongHop.gathered(current); })
        .then(function () {
          var body = new URLSearchParams();
          body.set(section.getAttribute("data-csrf-field"), section.getAttribute("data-csrf"));
          body.set("sdp", current.localDescription.sdp);
          return fetch(section.getAttribute("data-offer"), { method: "POST", body: body, credentials: "same-origin" });
        })
        .then(answerOf)
        .then(function (sdp) { return current.setRemoteDescription({ type: "answer", sdp: sdp }); })
        .then(function () {
          soundButton.hidden = false;
          play();
          say("Đang xem trực tiếp.");
        })
        .catch(function (error) {
          current.close();
          if (pc !== current) return;
          pc = null;
          say(error.message, true);
          if (error.retryAfter) setTimeout(function () { if (!pc) start(muted); }, error.retryAfter * 1000 + 200);
        });
    }

    section.querySelector(".live-start").addEventListener("click", function () { start(true); });
    soundButton.addEventListener("click", function () {
      setMuted(!video.muted);
      play();
    });
    var before = sessionStorage.getItem(remembered);
    if (before) start(before !== "sound");
  }

  document.addEventListener("DOMContentLoaded", function () {
    Array.prototype.forEach.call(document.querySelectorAll("[data-live-view]"), setUp);
  });
})();
