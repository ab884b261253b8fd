// Loaded by Automatic1111 / Forge from the extension's javascript/ folder (ComfyUI uses web/).
// The WebUI's 'Send to' buttons call switch_to_<tab name> after copying the image: this one opens
// the UnfoldLDM tab and passes the arguments through, as the WebUI's own switch_to_* functions do.
function switch_to_unfoldldm() {
    const buttons = gradioApp().querySelectorAll("#tabs > .tab-nav > button, #tabs > div > button");
    for (const button of buttons) {
        if (button.textContent.trim() === "UnfoldLDM") {
            button.click();
            break;
        }
    }
    return Array.from(arguments);
}
