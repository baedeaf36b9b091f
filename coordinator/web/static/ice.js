// What the pages that make WebRTC connections share (the console's live view, a guest's page).
window.PhongHop = window.PhongHop || {};
(function (shared) {
  "use strict";
  var GATHER_MS = 2000; // send the candidates gathered by then

  // Resolves once ICE gathering is complete, or after GATHER_MS with what was gathered so far.
  shared.gathered = function (pc) {
    if (pc.iceGatheringState === "complete") return Promise.resolve();
    return new Promise(function (resolve) {
      var timer = setTimeout(resolve, GATHER_MS);
      pc.addEventListener("icegatheringstatechange", function () {
        if (pc.iceGatheringState === "complete") { clearTimeout(timer); resolve(); }
      });
    });
  };
})(window.PhongHop);
