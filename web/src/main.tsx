import { render } from 'preact';
import { App } from './App.tsx';
import './styles.css';
import { takeTokenFromAddress } from './token.ts';

takeTokenFromAddress();

render(<App />, document.getElementById('app')!);
